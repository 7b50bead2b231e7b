//! ffmpeg as the publisher a real deployment has: an encoder pushing RTMP in real time.

use std::process::{Child, Command, Stdio};

/// A running ffmpeg, killed on drop.
pub struct Ffmpeg(pub Child);

impl Ffmpeg {
    /// Publishes the test clip (assets/testsrc.ts, H.264 + AAC), looped, to `url`
    /// (`rtmp://HOST:PORT/APP/KEY`), copying its frames as they are.
    pub fn publish_clip(url: &str) -> Ffmpeg {
        Ffmpeg::spawn(
            Command::new("ffmpeg")
                .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts"))
                .args(["-c", "copy", "-f", "flv"])
                .arg(url),
        )
    }

    /// Publishes a live test pattern with a tone, encoded as it goes (H.264 320×180 with a
    /// keyframe every second, AAC), to `url`. The tone starts `audio_delay_s` after the
    /// picture, as with an encoder whose audio path starts late: the publish then begins
    /// with video only.
    pub fn publish_pattern(url: &str, audio_delay_s: f32) -> Ffmpeg {
        Ffmpeg::spawn(
            Command::new("ffmpeg")
                .args(["-v", "error", "-re"])
                .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
                .args(["-itsoffset", &audio_delay_s.to_string()])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
                .args([
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                ])
                .args(["-g", "25", "-pix_fmt", "yuv420p"])
                .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
                .arg(url),
        )
    }

    /// Writes the test clip, looped in real time, as a live HLS stream into `dir`
    /// (`index.m3u8`, 1 s MPEG-TS segments, a window of 5, old segments deleted): what
    /// an encoder feeding a web server does.
    pub fn hls_output(dir: &std::path::Path) -> Ffmpeg {
        Ffmpeg::spawn(
            Command::new("ffmpeg")
                .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts"))
                .args(["-c", "copy", "-f", "hls", "-hls_time", "1"])
                .args(["-hls_list_size", "5", "-hls_flags", "delete_segments"])
                .arg(dir.join("index.m3u8")),
        )
    }

    fn spawn(command: &mut Command) -> Ffmpeg {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg is installed by scripts/test.sh");
        Ffmpeg(child)
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
