//! An IP camera for tests: GStreamer's RTSP server (`rtsp_camera.py` beside this file)
//! serving a live test pattern and a tone, optionally behind Digest authentication.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the camera may take to listen.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A running camera, killed on drop.
pub struct Camera {
    child: Child,
    /// `rtsp://127.0.0.1:PORT/cam`, without credentials.
    pub url: String,
}

impl Camera {
    /// Starts a camera on `port` sending `codec` (`h264`, `h265`) video and AAC audio;
    /// with `credentials`, it asks for Digest authentication.
    pub fn start(port: u16, codec: &str, credentials: Option<(&str, &str)>) -> Camera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/rtsp_camera.py");
        let mut command = Command::new("/usr/bin/python3");
        command.arg(script).arg(port.to_string()).arg(codec);
        if let Some((user, password)) = credentials {
            command.arg(user).arg(password);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-gi and GStreamer's RTSP server are installed by scripts/test.sh");
        let stdout = child.stdout.take().expect("piped");
        let (ready, told) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = ready.send(first);
            // Keep draining so the camera never blocks on a full pipe.
            for _ in lines {}
        });
        match told.recv_timeout(READY_DEADLINE) {
            Ok(Some(line)) if line == "ready" => {}
            other => {
                let _ = child.kill();
                panic!("the RTSP camera did not start: {other:?}");
            }
        }
        Camera {
            child,
            url: format!("rtsp://127.0.0.1:{port}/cam"),
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
