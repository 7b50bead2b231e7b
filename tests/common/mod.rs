//! Helpers for tests that run real `flotilla` processes on loopback.
//!
//! Every wait is a bounded poll of something observable (a port answering, a process
//! exiting); nothing sleeps for a fixed time and hopes.

#![allow(dead_code, clippy::disallowed_methods)] // Real processes need the real clock.

pub mod browser;
pub mod camera;
pub mod ffmpeg;
pub mod nginx;
pub mod play;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to answer its first health check.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long one HTTP exchange with a local node may take.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between polls.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_flotilla")
}

/// Ports handed to test nodes come from below Linux's ephemeral range (32768–60999 by
/// default): a port the kernel picked for us could be handed out again, between our
/// check and the node's bind, to any outgoing connection (ffmpeg, another test's client),
/// and the node would fail with "address in use".
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next port to try; tests of one binary run in parallel threads and share it. Each
/// test binary starts at its own offset (by process id) so binaries run one after the
/// other do not reuse a port whose old sockets are still closing.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A port free on 127.0.0.1 for both TCP and UDP (HTTP and the mesh share a number).
pub fn free_port() -> u16 {
    use std::sync::atomic::Ordering;
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let offset = std::process::id() % 50 * 200;
    for _ in 0..span {
        let step = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORTS.start + ((offset + step) % span) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?} on 127.0.0.1");
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

/// The next directory number; tests of one binary run in parallel threads and share it.
/// A name built from a clock and a port once let two parallel tests draw the same
/// directory, so two nodes read one config file (CI, stop 18): a counter cannot repeat.
static NEXT_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::Ordering;
        let number = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let unique = format!("flotilla-test-{label}-{}-{number}", std::process::id());
        let path = std::env::temp_dir().join(unique);
        // A directory left by an earlier process with the same id is stale: start clean.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `flotilla ARGS` to completion with a deadline; returns (status, stdout, stderr).
pub fn run_to_end(args: &[&str], deadline: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut child, deadline).expect("flotilla did not finish in time");
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stdout, stderr)
}

pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let _ = child.kill();
    None
}

/// Where a node's log goes: a pipe (read if it exits early), or with
/// `FLOTILLA_TEST_LOGS=DIR` a file per node start in DIR, for debugging a failed test.
fn node_log(extra: &[&str]) -> Stdio {
    let Some(dir) = std::env::var_os("FLOTILLA_TEST_LOGS") else {
        return Stdio::piped();
    };
    let label = extra.join("-").replace(['/', ' '], "_");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let path = std::path::Path::new(&dir).join(format!("node{label}-{stamp}.log"));
    std::fs::File::create(path).map_or_else(|_| Stdio::piped(), Stdio::from)
}

/// Lines of a node's stderr kept for a failure message (the newest).
const LOG_TAIL_LINES: usize = 200;

/// Drains a node's piped stderr on a thread, keeping the last [`LOG_TAIL_LINES`]: a
/// pipe nobody reads fills after 64 KiB, and the node then blocks on its next log line.
fn drain(child: &mut Child) -> (LogTail, Option<std::thread::JoinHandle<()>>) {
    let tail = LogTail::default();
    let reader = child.stderr.take().map(|pipe| {
        let kept = tail.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                if kept.len() == LOG_TAIL_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        })
    });
    (tail, reader)
}

/// The newest lines of a node's stderr.
type LogTail = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>;

/// A running node process, killed on drop.
pub struct Node {
    pub child: Child,
    /// The tail of its stderr (when not written to `FLOTILLA_TEST_LOGS`).
    pub log: LogTail,
    /// The thread draining stderr (ends when the node's stderr closes).
    log_reader: Option<std::thread::JoinHandle<()>>,
    pub dir: TempDir,
}

impl Node {
    /// Starts `flotilla run -c CONFIG EXTRA…` and waits until `health` answers.
    pub fn start(config: &str, health: SocketAddr, extra: &[&str], env: &[(&str, &str)]) -> Node {
        let dir = TempDir::new("node");
        let path = dir.write("flotilla.conf", config);
        Node::spawn(dir, &path, health, extra, env, None)
    }

    /// Starts `flotilla run -c CONFIG` allowed at most `nofile` open file descriptors
    /// (the shell's `ulimit -n`), and waits until `health` answers.
    pub fn start_with_fd_limit(config: &str, health: SocketAddr, nofile: u32) -> Node {
        let dir = TempDir::new("node");
        let path = dir.write("flotilla.conf", config);
        Node::spawn(dir, &path, health, &[], &[], Some(nofile))
    }

    /// Starts `flotilla run -c FILE EXTRA…` with an existing config file.
    pub fn start_with_file(
        path: &std::path::Path,
        health: SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        Node::spawn(TempDir::new("node"), path, health, extra, env, None)
    }

    fn spawn(
        dir: TempDir,
        path: &std::path::Path,
        health: SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u32>,
    ) -> Node {
        let mut command = match nofile {
            // `exec` keeps the node the shell's process: killing the child kills the node.
            Some(nofile) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
                    .arg(binary());
                shell
            }
            None => Command::new(binary()),
        };
        command
            .arg("run")
            .arg("-c")
            .arg(path)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(node_log(extra));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let (log, log_reader) = drain(&mut child);
        let mut node = Node {
            child,
            log,
            log_reader,
            dir,
        };
        node.wait_for_health(health);
        node
    }

    fn wait_for_health(&mut self, health: SocketAddr) {
        let start = Instant::now();
        loop {
            if let Ok((200, _, _)) = http_get(health, "/flotilla/api/health", &[]) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // The node is gone, so its stderr is closed: the drain ends with its last line.
                if let Some(reader) = self.log_reader.take() {
                    let _ = reader.join();
                }
                panic!("node exited early with {status}: {}", self.log_tail());
            }
            assert!(
                start.elapsed() < START_DEADLINE,
                "node did not answer health in time; its log ends:\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends a signal (by name, e.g. "TERM") to the node.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Node {
    /// The last lines the node wrote to stderr.
    pub fn log_tail(&self) -> String {
        let kept = self.log.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET of a binary body (a segment): (status, body bytes).
pub fn http_get_bytes(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_DEADLINE)?;
    stream.set_read_timeout(Some(REQUEST_DEADLINE))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of head"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// A minimal HTTP/1.1 request with an empty body (Connection: close): (status, head, body).
pub fn http_request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    http_exchange(method, addr, path, headers, b"")
}

/// A request with `body` (sent with its Content-Length unless it is an empty GET):
/// (status, head, body). A body the server refuses before reading it all still gets
/// the server's answer.
pub fn http_exchange(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_DEADLINE)?;
    stream.set_read_timeout(Some(REQUEST_DEADLINE))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if method != "GET" || !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok((status, head.to_string(), body.to_string()))
}

/// GET: (status, head, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    http_request("GET", addr, path, headers)
}

/// POST with an empty body: (status, head, body).
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    http_request("POST", addr, path, headers)
}

/// Polls `probe` until it returns `Some`, within `deadline`.
pub fn poll_until<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Some(value) = probe() {
            return Some(value);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    None
}

/// `ffprobe` of a URL's streams (`codec_name,width,height`, compact): what a real player
/// sees there.
pub fn ffprobe_streams(url: &str) -> String {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "compact",
        ])
        .arg(url)
        .output()
        .expect("ffprobe is installed by scripts/test.sh");
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// `Authorization: Basic …` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A node of a cluster sharing one config file: `127.0.0.N:port`, hostname `name`.
pub struct Member {
    pub node: Option<Node>,
    pub http: SocketAddr,
    pub rtmp: String,
    pub dir: TempDir,
}

/// The mesh tests' shared config: `cluster_key`, a `live` template, and every node of
/// `peers` as `127.0.0.N:port` with fast timeouts.
pub fn shared_config(port: u16, key: &str, peers: &[u8]) -> String {
    let mut text =
        format!("cluster_key {key};\ntemplate live {{ prefix live; segment_duration 1; }}\n");
    for peer in peers {
        text.push_str(&format!(
            "peer 127.0.0.{peer}:{port} {{ fetch_timeout 300; stale_timeout 1500; }}\n"
        ));
    }
    text
}

/// Starts node `127.0.0.{index}` with the shared `config` and its own listeners (in its
/// `flotilla.conf.d/listen.conf` fragment), named `name`.
pub fn member(index: u8, name: &str, port: u16, rtmp_port: u16, config: &str) -> Member {
    member_with(index, name, port, rtmp_port, config, "")
}

/// A member whose own fragment adds `extra` directives to the shared config.
pub fn member_with(
    index: u8,
    name: &str,
    port: u16,
    rtmp_port: u16,
    config: &str,
    extra: &str,
) -> Member {
    let dir = TempDir::new(name);
    let main = dir.write("flotilla.conf", config);
    dir.write(
        "flotilla.conf.d/listen.conf",
        &format!("http 127.0.0.{index}:{port};\nrtmp 127.0.0.{index}:{rtmp_port};\n{extra}"),
    );
    let http: SocketAddr = format!("127.0.0.{index}:{port}").parse().unwrap();
    let node = Node::start_with_file(&main, http, &["--hostname", name], &[]);
    Member {
        node: Some(node),
        http,
        rtmp: format!("127.0.0.{index}:{rtmp_port}"),
        dir,
    }
}

impl Member {
    /// Starts this member's node again (same config, same addresses).
    pub fn restart(&mut self, name: &str) {
        let main = self.dir.0.join("flotilla.conf");
        self.node = Some(Node::start_with_file(
            &main,
            self.http,
            &["--hostname", name],
            &[],
        ));
    }
}
