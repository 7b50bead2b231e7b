//! A real browser for player tests: headless Chromium loading a page that the test
//! serves itself, on its own origin, and that reports back over HTTP.
//!
//! No DevTools protocol: the page POSTs JSON reports to `/report` on the origin that
//! served it, and the test reads them from a channel. The page loads hls.js from the
//! node under test (`/flotilla/player/hls.js`), so the script the node embeds is the one
//! that plays, and nothing comes from any other host.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{TempDir, http_get, poll_until};

/// Largest report a page may POST.
const MAX_REPORT_BYTES: usize = 64 * 1024;
/// How long the page server waits for one request's bytes.
const PAGE_SERVER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one HTML page at `/` on 127.0.0.1 (its own origin), and scripts beside it,
/// and collects the JSON the page POSTs to `/report`.
pub struct PageServer {
    pub origin: String,
    pub reports: mpsc::Receiver<serde_json::Value>,
}

/// A script the page server serves at `/NAME`.
pub type Script = (&'static str, std::sync::Arc<Vec<u8>>);

impl PageServer {
    pub fn start(html: String) -> PageServer {
        PageServer::with_scripts(html, Vec::new())
    }

    pub fn with_scripts(html: String, scripts: Vec<Script>) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (sender, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (html, scripts) = (html.clone(), scripts.clone());
                let sender = sender.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(stream, &html, &scripts, &sender);
                });
            }
        });
        PageServer { origin, reports }
    }

    /// The next report within `deadline`.
    pub fn next_report(&self, deadline: Duration) -> Option<serde_json::Value> {
        self.reports.recv_timeout(deadline).ok()
    }
}

fn serve_one(
    stream: TcpStream,
    html: &str,
    scripts: &[Script],
    reports: &mpsc::Sender<serde_json::Value>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(PAGE_SERVER_READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0).min(MAX_REPORT_BYTES);
        }
    }
    let mut writer = stream;
    if request_line.starts_with("POST /report") {
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        if let Ok(report) = serde_json::from_slice(&body) {
            let _ = reports.send(report);
        }
        writer.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")?;
    } else if request_line.starts_with("GET / ") {
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{html}",
            html.len()
        )?;
    } else if let Some((_, script)) = scripts
        .iter()
        .find(|(name, _)| request_line.starts_with(&format!("GET /{name} ")))
    {
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            script.len()
        )?;
        writer.write_all(script)?;
    } else {
        writer.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
    }
    Ok(())
}

/// A page that plays `source` with the hls.js the node at `node` serves, and reports
/// every second: the playback position, every hls.js error event, whether hls.js is in
/// use. The report goes to the page's own origin.
pub fn hlsjs_page(node: SocketAddr, source: &str) -> String {
    hlsjs_page_with(node, source, "{}")
}

/// [`hlsjs_page`] with an hls.js config (a JavaScript object literal); the reports add
/// hls.js's latency (from the live edge) and the wall-clock distance from the playing
/// position's program date.
pub fn hlsjs_page_with(node: SocketAddr, source: &str, config: &str) -> String {
    format!(
        r#"<!doctype html>
<html><body>
<video id="v" muted autoplay playsinline></video>
<script src="http://{node}/flotilla/player/hls.js"></script>
<script>
  const video = document.getElementById('v');
  const errors = [];
  let hlsjs = false;
  window.addEventListener('error', (e) => errors.push({{ type: 'page', details: String(e.message) }}));
  if (window.Hls && Hls.isSupported()) {{
    hlsjs = true;
    const hls = new Hls({config});
    window.player = hls;
    hls.on(Hls.Events.ERROR, (event, data) => {{
      errors.push({{ type: data.type, details: data.details, fatal: data.fatal,
                     error: data.error ? String(data.error) : null,
                     url: data.url || (data.context && data.context.url) || null }});
    }});
    hls.loadSource({source:?});
    hls.attachMedia(video);
  }}
  setInterval(() => {{
    fetch('/report', {{ method: 'POST', body: JSON.stringify({{
      hlsjs, time: video.currentTime, errors, paused: video.paused,
      videoWidth: video.videoWidth, readyState: video.readyState,
      latency: window.player ? window.player.latency : null,
      behind_program_date_ms: window.player && window.player.playingDate
        ? Date.now() - window.player.playingDate.getTime() : null
    }}) }}).catch(() => {{}});
  }}, 1000);
</script>
</body></html>
"#
    )
}

/// A page that plays the DASH manifest `source` with dash.js (served by the page server
/// at `/dash.all.min.js`) and reports like [`hlsjs_page`]: position, every dash.js error
/// event, its live latency.
pub fn dashjs_page(source: &str) -> String {
    format!(
        r#"<!doctype html>
<html><body>
<video id="v" muted autoplay playsinline></video>
<script src="/dash.all.min.js"></script>
<script>
  const video = document.getElementById('v');
  const errors = [];
  let dashjs_loaded = false;
  window.addEventListener('error', (e) => errors.push({{ type: 'page', details: String(e.message) }}));
  if (window.dashjs) {{
    dashjs_loaded = true;
    window.player = dashjs.MediaPlayer().create();
    window.player.on(dashjs.MediaPlayer.events.ERROR, (e) => {{
      errors.push({{ type: 'dash', details: JSON.stringify(e.error || e) }});
    }});
    window.player.initialize(video, {source:?}, true);
  }}
  setInterval(() => {{
    fetch('/report', {{ method: 'POST', body: JSON.stringify({{
      dashjs: dashjs_loaded, time: video.currentTime, errors, paused: video.paused,
      videoWidth: video.videoWidth, readyState: video.readyState,
      latency: window.player && window.player.getCurrentLiveLatency ? window.player.getCurrentLiveLatency() : null
    }}) }}).catch(() => {{}});
  }}, 1000);
</script>
</body></html>
"#
    )
}

/// The dash.js release the DASH tests play with (BSD-3-Clause, DASH Industry Forum).
pub const DASHJS_VERSION: &str = "4.7.4";

/// dash.js's player script, from the npm registry (`npm pack` checks the tarball's
/// integrity against the registry); never from a CDN.
pub fn dashjs_script() -> Vec<u8> {
    let dir = TempDir::new("dashjs");
    let packed = Command::new("npm")
        .args(["pack", "--silent", &format!("dashjs@{DASHJS_VERSION}")])
        .current_dir(&dir.0)
        .output()
        .expect("npm is installed by scripts/test.sh");
    assert!(
        packed.status.success(),
        "npm pack dashjs: {}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let tarball = format!("dashjs-{DASHJS_VERSION}.tgz");
    let file = "package/dist/dash.all.min.js";
    let extracted = Command::new("tar")
        .args(["-xzf", &tarball, file])
        .current_dir(&dir.0)
        .status()
        .expect("tar runs");
    assert!(extracted.success(), "{file} is not in {tarball}");
    std::fs::read(dir.0.join(file)).expect("dash.js extracted")
}

/// `chromium` headless with the flags every test uses, its profile in `profile`.
pub fn headless(profile: &TempDir) -> Command {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()));
    command
}

/// Headless Chromium on one page, killed on drop.
pub struct Browser {
    child: Child,
    _profile: TempDir,
}

impl Browser {
    pub fn open(url: &str) -> Browser {
        Browser::open_with(url, &[])
    }

    /// A browser with `flags` besides the usual ones.
    pub fn open_with(url: &str, flags: &[&str]) -> Browser {
        let profile = TempDir::new("chromium");
        // Its own process group: Chromium's renderers and helpers die with it.
        let child = headless(&profile)
            .process_group(0)
            .args(["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
            .args(flags)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium is installed by scripts/test.sh");
        Browser {
            child,
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium's whole process group. Through bash's builtin: procps' `kill -KILL
        // -PGID` reads some group numbers as options and signals every process (-1).
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("kill -KILL -- -{}", self.child.id()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long the playback a test asks for may take, start-up included.
const PLAYBACK_DEADLINE: Duration = Duration::from_secs(60);
/// How long a published stream may take to have its first segment.
const FIRST_SEGMENT_DEADLINE: Duration = Duration::from_secs(20);

/// Waits until `path` on `at` answers `wanted`.
pub fn wait_for_status(at: SocketAddr, path: &str, wanted: u16) {
    let answered = poll_until(FIRST_SEGMENT_DEADLINE, || {
        matches!(http_get(at, path, &[]), Ok((status, _, _)) if status == wanted).then_some(())
    });
    assert!(answered.is_some(), "{path} on {at} never answered {wanted}");
}

/// Reads the page's reports until the video has played `seconds`; returns the last
/// report. Panics with the report on any hls.js error event or when time runs out.
pub fn plays_without_errors(page: &PageServer, seconds: f64) -> serde_json::Value {
    plays_in(page, "hlsjs", seconds)
}

/// Like [`plays_without_errors`], for the player the page reports as `player`.
pub fn plays_in(page: &PageServer, player: &str, seconds: f64) -> serde_json::Value {
    plays_in_tolerating(page, player, seconds, 0)
}

/// Recoveries a low-latency player may make in a test: it keeps under a second of
/// buffer, and on a loaded two-core machine (the node, ffmpeg and two browsers) a part
/// can come a moment late. A fatal error, any other error, or more recoveries still fail.
pub const LOW_LATENCY_STALLS_TOLERATED: usize = 2;

/// What a low-latency player reports when it recovers: the stall, and, when it goes on
/// from the part after the late one, its seek over the hole that leaves (non-fatal; seen
/// here once: a stall at 3.9 s, then a 0.17 s seek). A live WebRTC source's frames also
/// come from a browser's encoder, which skips some on a loaded machine.
pub const LOW_LATENCY_RECOVERIES: [&str; 2] = ["bufferStalledError", "bufferSeekOverHole"];

/// [`plays_in`], allowing up to `recoveries` of a low-latency player's recoveries
/// ([`LOW_LATENCY_RECOVERIES`]).
pub fn plays_in_tolerating(
    page: &PageServer,
    player: &str,
    seconds: f64,
    recoveries: usize,
) -> serde_json::Value {
    plays_recovering_from(page, player, seconds, recoveries, &LOW_LATENCY_RECOVERIES)
}

/// [`plays_in`], allowing up to `count` recovered (non-fatal) errors of the `kinds`.
#[allow(clippy::disallowed_methods)] // A real browser plays in real time.
pub fn plays_recovering_from(
    page: &PageServer,
    player: &str,
    seconds: f64,
    count: usize,
    kinds: &[&str],
) -> serde_json::Value {
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < PLAYBACK_DEADLINE {
        let Some(report) = page.next_report(Duration::from_secs(5)) else {
            continue;
        };
        assert_eq!(report[player], true, "{player} did not load: {report}");
        let errors = report["errors"].as_array().cloned().unwrap_or_default();
        let recovered = |error: &serde_json::Value| {
            error["fatal"] == false
                && error["details"]
                    .as_str()
                    .is_some_and(|details| kinds.contains(&details))
        };
        let tolerated = errors.len() <= count && errors.iter().all(recovered);
        assert!(tolerated, "the player saw errors: {report}");
        if report["time"].as_f64().unwrap_or(0.0) >= seconds {
            return report;
        }
        last = report;
    }
    panic!("the video did not play {seconds} s in time; last report: {last}");
}
