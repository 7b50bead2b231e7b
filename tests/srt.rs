//! SRT with the encoders operators have: ffmpeg (libsrt) and srt-live-transmit publish
//! to the node's SRT listener with the stream id naming the stream (SRT's access-control
//! syntax and bare names, configured streams and template prefixes), a passphrase is
//! required where the config asks for one and a wrong one is refused at the handshake,
//! an unknown stream is refused, and the node pulls from an encoder in listener mode.
//! Each stream is played back with ffprobe.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::play::{ffmpeg_plays, media_playlist};
use common::*;

/// A running encoder, killed on drop.
struct Encoder(Child);

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg encoding a live test pattern with a tone into MPEG-TS over SRT to `url`
/// (with `mode=listener` in it, ffmpeg waits for the node to call).
fn ffmpeg_srt(url: &str) -> Encoder {
    let child = Command::new("ffmpeg")
        .args(["-v", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed by scripts/test.sh");
    Encoder(child)
}

/// ffmpeg's stderr once it ended (within `deadline`), or `None` while it runs.
fn ended_with(encoder: &mut Encoder, deadline: Duration) -> Option<String> {
    use std::io::Read;
    wait_with_deadline(&mut encoder.0, deadline)?;
    let mut stderr = String::new();
    encoder.0.stderr.take()?.read_to_string(&mut stderr).ok()?;
    Some(stderr)
}

fn probe(at: SocketAddr, name: &str) -> String {
    ffprobe_streams(&format!("http://{at}/{name}/index.m3u8"))
}

#[test]
fn encoders_publish_over_srt_by_stream_id_with_passphrases() {
    let (port, srt) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "http 127.0.0.1:{port};\nsrt 127.0.0.1:{srt};\n\
         stream cam {{ input publish://; segment_duration 1; }}\n\
         stream secret {{ input publish://; segment_duration 1; srt_passphrase correct-horse-battery; }}\n\
         template live {{ prefix live; segment_duration 1; }}\n\
         stream guarded {{ input publish://; segment_duration 1; password s3cret; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let listener = format!("srt://127.0.0.1:{srt}");
    // A stream's publish password applies to SRT too: in the stream id.
    let _guarded_wrong = ffmpeg_srt(&format!(
        "{listener}?streamid=#!::r=guarded,m=publish,password=wrong"
    ));
    let _access_control = ffmpeg_srt(&format!("{listener}?streamid=#!::r=cam,m=publish"));
    let _templated = ffmpeg_srt(&format!("{listener}?streamid=live/one"));
    let _encrypted = ffmpeg_srt(&format!(
        "{listener}?streamid=secret&passphrase=correct-horse-battery"
    ));
    poll_until(Duration::from_secs(10), || {
        node.log_tail()
            .contains("SRT publisher refused")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("a wrong password is refused:\n{}", node.log_tail()));
    assert!(media_playlist(at, "guarded").is_none(), "nothing published");
    let _guarded = ffmpeg_srt(&format!(
        "{listener}?streamid=#!::r=guarded,m=publish,password=s3cret"
    ));
    for name in ["cam", "live/one", "secret", "guarded"] {
        poll_until(Duration::from_secs(20), || media_playlist(at, name))
            .unwrap_or_else(|| panic!("{name} is published over SRT:\n{}", node.log_tail()));
        let streams = probe(at, name);
        assert!(
            streams.contains("h264") && streams.contains("width=320") && streams.contains("aac"),
            "{name}: {streams}"
        );
    }
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/cam/index.m3u8"), 2);
    assert!(played, "{errors}");

    // A wrong passphrase fails the handshake; so does a stream nobody publishes to.
    let mut wrong = ffmpeg_srt(&format!(
        "{listener}?streamid=secret&passphrase=not-the-passphrase"
    ));
    let refused = ended_with(&mut wrong, Duration::from_secs(15)).expect("refused at once");
    assert!(refused.contains("Input/output error"), "{refused}");
    let mut unknown = ffmpeg_srt(&format!("{listener}?streamid=#!::r=nosuch,m=publish"));
    let refused = ended_with(&mut unknown, Duration::from_secs(15)).expect("refused at once");
    assert!(refused.contains("Input/output error"), "{refused}");
    let log = poll_until(Duration::from_secs(5), || {
        let log = node.log_tail();
        (log.contains("Incorrect passphrase") && log.contains("SRT caller refused")).then_some(log)
    });
    assert!(
        log.is_some(),
        "both refusals are logged:\n{}",
        node.log_tail()
    );
    assert!(
        !node.log_tail().contains("correct-horse-battery"),
        "no passphrase in the log"
    );
}

/// srt-live-transmit, the gateway many encoders sit behind, publishes UDP MPEG-TS to the
/// node over SRT.
#[test]
fn srt_live_transmit_publishes_to_the_node() {
    let (port, srt, udp) = (free_port(), free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "http 127.0.0.1:{port};\nsrt 127.0.0.1:{srt};\n\
         stream gateway {{ input publish://; segment_duration 1; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let gateway = Command::new("srt-live-transmit")
        .args(["-q", "-a:no"])
        .arg(format!("udp://127.0.0.1:{udp}"))
        .arg(format!("srt://127.0.0.1:{srt}?streamid=gateway"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("srt-live-transmit is installed by scripts/test.sh");
    let _gateway = Encoder(gateway);
    let _encoder = ffmpeg_srt(&format!("udp://127.0.0.1:{udp}?pkt_size=1316"));
    poll_until(Duration::from_secs(20), || media_playlist(at, "gateway"))
        .unwrap_or_else(|| panic!("the gateway's stream plays:\n{}", node.log_tail()));
    let streams = probe(at, "gateway");
    assert!(
        streams.contains("h264") && streams.contains("aac"),
        "{streams}"
    );
}

/// The node calls an encoder in SRT listener mode (`input srt://`), with a latency.
#[test]
fn the_node_pulls_from_an_srt_listener() {
    let (port, srt) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let _encoder = ffmpeg_srt(&format!("srt://127.0.0.1:{srt}?mode=listener"));
    let config = format!(
        "http 127.0.0.1:{port};\n\
         stream pulled {{ input srt://127.0.0.1:{srt}?latency=200; segment_duration 1; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    poll_until(Duration::from_secs(30), || media_playlist(at, "pulled"))
        .unwrap_or_else(|| panic!("the node pulls the encoder:\n{}", node.log_tail()));
    let streams = probe(at, "pulled");
    assert!(
        streams.contains("h264") && streams.contains("width=320") && streams.contains("aac"),
        "{streams}"
    );
}
