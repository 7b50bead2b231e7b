//! TLS listeners with real clients: ffmpeg publishes over rtmps and plays over https and
//! rtmps, ffprobe reads the stream over https, curl speaks HTTP/2 (ALPN) and HTTP/1.1
//! with the development certificate (`flotilla dev-cert`) as its CA; a certificate
//! replaced on disk is in service after SIGHUP while a viewer's connection plays on;
//! `redirect_https` sends plain clients to https; TLS garbage and silent clients are
//! closed and the node goes on serving.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ffmpeg::Ffmpeg;
use common::play::{ffmpeg_plays, media_playlist};
use common::*;

/// Writes a development certificate for `names` into `dir` with the node's own command.
fn dev_cert(dir: &Path, names: &[&str]) {
    let (status, _, stderr) = run_to_end(
        &[&["dev-cert", "--dir", dir.to_str().unwrap()], names].concat(),
        Duration::from_secs(20),
    );
    assert!(status.success(), "dev-cert failed: {stderr}");
}

/// curl against the node with the development certificate as its only CA: (exit status
/// success, stdout).
fn curl(ca: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl is installed by scripts/test.sh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

struct Tls {
    node: Node,
    at: SocketAddr,
    /// A second plain listener with `redirect_https`.
    redirecting: SocketAddr,
    https: u16,
    rtmps: u16,
    certs: TempDir,
}

fn start() -> Tls {
    let certs = TempDir::new("certs");
    dev_cert(&certs.0, &[]);
    let (port, https, rtmps) = (free_port(), free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let redirecting = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!(
        "http 127.0.0.1:{port};\nhttp {redirecting} {{ redirect_https; }}\nhttps 127.0.0.1:{https};\nrtmps 127.0.0.1:{rtmps};\n\
         trusted_proxies 127.0.0.1;\n\
         tls_certificate {dir}/flotilla.crt;\ntls_key {dir}/flotilla.key;\n\
         stream cam {{ input publish://; segment_duration 1; }}\n",
        dir = certs.0.display()
    );
    let node = Node::start(&config, at, &[], &[]);
    Tls {
        node,
        at,
        redirecting,
        https,
        rtmps,
        certs,
    }
}

impl Tls {
    fn ca(&self) -> std::path::PathBuf {
        self.certs.0.join("flotilla.crt")
    }

    fn publish(&self) -> Ffmpeg {
        let publisher =
            Ffmpeg::publish_clip(&format!("rtmps://127.0.0.1:{}/static/cam", self.rtmps));
        poll_until(Duration::from_secs(20), || media_playlist(self.at, "cam"))
            .unwrap_or_else(|| panic!("cam is published over rtmps:\n{}", self.node.log_tail()));
        publisher
    }
}

#[test]
fn ffmpeg_publishes_over_rtmps_and_plays_over_https_and_rtmps() {
    let tls = start();
    let _publisher = tls.publish();
    let https = format!("https://127.0.0.1:{}", tls.https);
    let streams = ffprobe_streams(&format!("{https}/cam/index.m3u8"));
    assert!(
        streams.contains("h264") && streams.contains("aac"),
        "ffprobe reads the stream over https: {streams}"
    );
    let (played, stderr) = ffmpeg_plays(&format!("rtmps://127.0.0.1:{}/static/cam", tls.rtmps), 2);
    assert!(played, "ffmpeg plays over rtmps: {stderr}");
    let (played, stderr) = ffmpeg_plays(&format!("{https}/cam/mpegts"), 2);
    assert!(played, "ffmpeg plays HTTP-MPEG-TS over https: {stderr}");
    // ALPN: HTTP/2 when asked, HTTP/1.1 otherwise; the certificate verifies.
    let url = format!("{https}/cam/index.m3u8");
    let (ok, out) = curl(
        &tls.ca(),
        &[
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &url,
        ],
    );
    assert!(ok && out.starts_with("2 200"), "curl --http2: {out}");
    let (ok, out) = curl(
        &tls.ca(),
        &[
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &url,
        ],
    );
    assert!(ok && out.starts_with("1.1 200"), "curl --http1.1: {out}");
}

#[test]
fn a_replaced_certificate_serves_new_handshakes_and_a_playing_viewer_plays_on() {
    let tls = start();
    let _publisher = tls.publish();
    // A viewer on a long HTTP-MPEG-TS connection over TLS.
    let out = tls.certs.0.join("viewer.ts");
    let mut viewer = Command::new("curl")
        .args(["-sS", "--no-buffer", "--max-time", "30", "--cacert"])
        .arg(tls.ca())
        .arg("-o")
        .arg(&out)
        .arg(format!("https://127.0.0.1:{}/cam/mpegts", tls.https))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
    poll_until(Duration::from_secs(10), || (size() > 10_000).then_some(()))
        .expect("the viewer receives media");
    // The renewal: a new pair in place of the old one, then SIGHUP.
    let old_ca = tls.certs.0.join("old.crt");
    std::fs::copy(tls.ca(), &old_ca).unwrap();
    dev_cert(&tls.certs.0, &["renewed.example"]);
    tls.node.signal("HUP");
    let url = format!("https://127.0.0.1:{}/cam/index.m3u8", tls.https);
    poll_until(Duration::from_secs(10), || {
        curl(&tls.ca(), &["-o", "/dev/null", &url]).0.then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "new handshakes present the new certificate:\n{}",
            tls.node.log_tail()
        )
    });
    let (old_ok, _) = curl(&old_ca, &["-o", "/dev/null", &url]);
    assert!(!old_ok, "the old certificate is no longer presented");
    assert!(tls.node.log_tail().contains("tls certificate reloaded"));
    // The viewer's connection, opened under the old certificate, still carries media.
    let before = size();
    poll_until(Duration::from_secs(5), || {
        (size() > before + 10_000).then_some(())
    })
    .expect("the viewer plays on across the reload");
    assert!(
        viewer.try_wait().unwrap().is_none(),
        "the viewer's connection is open"
    );
    let _ = viewer.kill();
    let _ = viewer.wait();
}

#[test]
fn redirect_https_sends_plain_clients_to_the_tls_listener() {
    let tls = start();
    let response = http_get(tls.redirecting, "/cam/index.m3u8?token=a", &[]);
    let (status, head, _) = response.expect("answers");
    assert_eq!(status, 301, "{head}");
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .unwrap_or_default();
    assert_eq!(
        location,
        format!("https://127.0.0.1:{}/cam/index.m3u8?token=a", tls.https)
    );
    // Behind a trusted proxy, the host the viewer asked it for.
    let forwarded = [("X-Forwarded-Host", "tv.example")];
    let (status, head, _) = http_get(tls.redirecting, "/cam/mpegts", &forwarded).unwrap();
    assert_eq!(status, 301);
    assert!(
        head.contains(&format!(
            "location: https://tv.example:{}/cam/mpegts",
            tls.https
        )),
        "{head}"
    );
}

/// Reads (a TLS alert, maybe) until the node closes the connection: true when it did
/// before the read timeout.
fn closed_by_node(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 256];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real server's real deadlines.
fn tls_garbage_and_silent_clients_are_closed_and_the_node_serves_on() {
    let tls = start();
    let address = SocketAddr::from(([127, 0, 0, 1], tls.https));
    // Garbage where a ClientHello should be: closed at once.
    let mut garbage = TcpStream::connect(address).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_by_node(&mut garbage) && started.elapsed() < Duration::from_secs(2),
        "garbage is closed at once"
    );
    // The same on the rtmps port (an RTMP handshake where TLS is spoken).
    let mut rtmp_garbage = TcpStream::connect(("127.0.0.1", tls.rtmps)).unwrap();
    rtmp_garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    rtmp_garbage.write_all(&[3u8; 1537]).unwrap();
    assert!(
        closed_by_node(&mut rtmp_garbage),
        "rtmp garbage on rtmps is closed"
    );
    let mut sink = [0u8; 256];
    // A client that opens and says nothing holds no slot forever (closed within the
    // handshake deadline, 10 s); meanwhile the node serves others.
    let mut silent = TcpStream::connect(address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let (ok, out) = curl(
        &tls.ca(),
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://127.0.0.1:{}/flotilla/api/health", tls.https),
        ],
    );
    assert!(
        ok && out.starts_with("200"),
        "served during a silent handshake: {out}"
    );
    let started = Instant::now();
    let closed = matches!(silent.read(&mut sink), Ok(0));
    assert!(
        closed && started.elapsed() < Duration::from_secs(12),
        "the silent client is closed by the handshake deadline"
    );
}
