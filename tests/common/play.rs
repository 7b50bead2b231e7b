//! What a viewer and an operator see of a stream on a node: its media playlist, its
//! entry in the streams API, and whether ffmpeg plays it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::http_get;

/// The media playlist of stream `name` on `at`: (media sequence, segment names).
pub fn media_playlist(at: SocketAddr, name: &str) -> Option<(u64, Vec<String>)> {
    let (status, _, body) = http_get(at, &format!("/{name}/tracks-v1a1/mono.m3u8"), &[]).ok()?;
    if status != 200 {
        return None;
    }
    let sequence = body
        .lines()
        .find_map(|line| line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let names = body
        .lines()
        .filter(|line| line.ends_with(".ts"))
        .map(str::to_string)
        .collect();
    Some((sequence, names))
}

/// The stream `name` in the streams API of `at`.
pub fn stream_stats(at: SocketAddr, name: &str) -> Option<Value> {
    let (_, _, body) = http_get(at, "/streamer/api/v3/streams", &[]).ok()?;
    let streams: Value = serde_json::from_str(&body).ok()?;
    streams["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .map(|s| s["stats"].clone())
}

/// Plays `url` with `ffmpeg -f null` for `seconds`: whether it ended without error.
pub fn ffmpeg_plays(url: &str, seconds: u32) -> (bool, String) {
    let output = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            url,
            "-t",
            &seconds.to_string(),
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed by scripts/test.sh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Reads the media sequence of `name`'s playlist on `at` five times a second for
/// `seconds`, appending each to `sequences` (a viewer's view across a failover).
pub fn watch_sequences(at: SocketAddr, name: &str, seconds: u64, sequences: &mut Vec<u64>) {
    for _ in 0..seconds * 5 {
        if let Some((sequence, _)) = media_playlist(at, name) {
            sequences.push(sequence);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
