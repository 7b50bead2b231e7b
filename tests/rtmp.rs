//! RTMP on a real node: publishing (our own client, and ffmpeg), playing (our own client,
//! and ffprobe), template streams created by their publisher, and the protocol limits.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use flotilla::media::frame::Frame;
use flotilla::media::source::ClipFrames;
use flotilla::media::ts::STREAM_TYPE_H264;
use flotilla::media::ts::demux::Demuxer;
use flotilla::rtmp::client::RtmpClient;
use flotilla::rtmp::error::ClientError;
use flotilla::rtmp::flv::Depacketizer;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct RtmpNode {
    _node: Node,
    http: SocketAddr,
    rtmp: String,
}

fn rtmp_node() -> RtmpNode {
    let (http, rtmp) = (free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\n\
         stream pub {{ input publish://; segment_duration 1; }}\n\
         template live {{ prefix live; segment_duration 1; }}\n\
         stream clip {{ input test://; segment_duration 1; }}\n"
    );
    let node = Node::start(&config, addr(http), &[], &[]);
    RtmpNode {
        _node: node,
        http: addr(http),
        rtmp: format!("127.0.0.1:{rtmp}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `seconds` of the test clip's frames.
fn clip_frames(seconds: u64) -> Vec<Frame> {
    let mut clip = ClipFrames::new(flotilla::media::TEST_CLIP_TS).unwrap();
    let mut frames = Vec::new();
    loop {
        let (frame, _) = clip.next_frame();
        if frame.dts > seconds * 90_000 {
            return frames;
        }
        frames.push(frame);
    }
}

async fn publish(
    address: &str,
    app: &str,
    key: &str,
    frames: &[Frame],
) -> Result<RtmpClient, ClientError> {
    let mut client = RtmpClient::connect(address, app).await?;
    client.publish(key).await?;
    let keyframe = frames.iter().find(|f| f.starts_gop()).unwrap();
    let audio = frames.iter().find(|f| !f.codec.is_video());
    client.publish_headers(keyframe, audio).await?;
    for frame in frames {
        client.publish_frame(frame).await?;
    }
    Ok(client)
}

/// Whether the server refused with a `NetStream.Publish.BadName` status.
fn refused_as_bad_name(error: &ClientError) -> bool {
    matches!(error, ClientError::Rejected(code) if code.contains("BadName"))
}

/// The body of `GET path` when it answers 200.
fn fetch_ok(at: SocketAddr, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(at).ok()?;
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    response
        .starts_with(b"HTTP/1.1 200")
        .then(|| response[split + 4..].to_vec())
}

/// At least `wanted` segments of one playlist, every one fetched. The window may slide
/// between reading the playlist and fetching (a loaded host still muxing the burst), so a
/// snapshot whose oldest segment was already dropped is read again.
fn segments_of(at: SocketAddr, stream: &str, wanted: usize) -> Vec<Vec<u8>> {
    poll_until(Duration::from_secs(20), || {
        let (status, _, body) = http_get(at, &format!("/{stream}/mono.m3u8"), &[]).ok()?;
        let playlist = m3u8_rs::parse_media_playlist_res(body.as_bytes()).ok()?;
        if status != 200 || playlist.segments.len() < wanted {
            return None;
        }
        playlist
            .segments
            .iter()
            .map(|segment| fetch_ok(at, &format!("/{stream}/{}", segment.uri)))
            .collect::<Option<Vec<_>>>()
    })
    .unwrap_or_else(|| panic!("{stream} published no fetchable HLS segments"))
}

#[test]
fn our_client_publishes_to_a_static_stream_and_hls_and_rtmp_play_follow() {
    let node = rtmp_node();
    let frames = clip_frames(8);
    runtime().block_on(async {
        let _publisher = publish(&node.rtmp, "static", "pub", &frames).await.unwrap();
        let segments = segments_of(node.http, "pub", 3);
        for bytes in &segments {
            let mut demuxer = Demuxer::new();
            let mut packets = Vec::new();
            demuxer.push(bytes, &mut packets);
            demuxer.flush(&mut packets);
            let video = packets
                .iter()
                .find(|p| p.stream_type == STREAM_TYPE_H264)
                .unwrap();
            assert!(
                flotilla::media::h264::is_keyframe(&video.data),
                "segments start on a keyframe"
            );
            assert!(
                flotilla::media::h264::video_info(&video.data).is_some(),
                "SPS restored before the keyframe"
            );
        }

        let mut player = RtmpClient::connect(&node.rtmp, "static").await.unwrap();
        player.play("pub").await.unwrap();
        let mut depacketizer = Depacketizer::new();
        let first = loop {
            let frame = player.next_frame(&mut depacketizer).await.unwrap();
            if frame.codec.is_video() {
                break frame;
            }
        };
        assert!(first.keyframe, "players start on a keyframe");
        let info = flotilla::media::h264::video_info(&first.data).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
    });
}

#[test]
fn a_template_stream_lives_as_long_as_its_publisher() {
    let node = rtmp_node();
    let frames = clip_frames(5);
    runtime().block_on(async {
        let publisher = publish(&node.rtmp, "live", "news", &frames).await.unwrap();
        assert!(!segments_of(node.http, "live/news", 2).is_empty());
        drop(publisher);
    });
    let gone = poll_until(Duration::from_secs(10), || {
        let (status, _, _) = http_get(node.http, "/live/news/mono.m3u8", &[]).ok()?;
        (status == 404).then_some(())
    });
    assert!(
        gone.is_some(),
        "the published stream is removed when its publisher leaves"
    );
}

#[test]
fn publishing_to_an_unknown_name_or_a_busy_stream_is_refused() {
    let node = rtmp_node();
    let frames = clip_frames(1);
    runtime().block_on(async {
        let error = publish(&node.rtmp, "static", "nobody", &frames)
            .await
            .err()
            .expect("refused");
        assert!(refused_as_bad_name(&error), "{error}");
        let _first = publish(&node.rtmp, "static", "pub", &frames).await.unwrap();
        let error = publish(&node.rtmp, "static", "pub", &frames)
            .await
            .err()
            .expect("busy");
        assert!(refused_as_bad_name(&error), "{error}");
        let mut player = RtmpClient::connect(&node.rtmp, "static").await.unwrap();
        assert!(player.play("missing").await.is_err());
    });
}

#[test]
fn chunk_limits_and_the_handshake_deadline_close_abusive_connections() {
    let node = rtmp_node();
    runtime().block_on(async {
        // A SetChunkSize of 1 byte (below the 128 minimum) after a valid connect.
        let mut client = RtmpClient::connect(&node.rtmp, "static").await.unwrap();
        client
            .send_raw(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1])
            .await
            .unwrap();
        assert!(
            client.closed_within(Duration::from_secs(5)).await,
            "tiny chunk size refused"
        );

        // A message announcing 16 MB.
        let mut client = RtmpClient::connect(&node.rtmp, "static").await.unwrap();
        client
            .send_raw(&[0x04, 0, 0, 0, 0xf4, 0x24, 0x00, 9, 1, 0, 0, 0])
            .await
            .unwrap();
        assert!(
            client.closed_within(Duration::from_secs(5)).await,
            "oversized message refused"
        );

        // A client that never completes the handshake is closed after the deadline.
        let mut silent = tokio::net::TcpStream::connect(&node.rtmp).await.unwrap();
        let mut buffer = [0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(15), async {
            use tokio::io::AsyncReadExt;
            loop {
                match silent.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "handshake deadline enforced");
    });
}

#[test]
fn ffmpeg_publishes_and_ffprobe_plays_over_rtmp() {
    let node = rtmp_node();
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{}/live/ffmpeg", node.rtmp))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed by scripts/test.sh");
    let segments = segments_of(node.http, "live/ffmpeg", 2);
    assert!(!segments.is_empty());
    let streams = ffprobe_streams(&format!("rtmp://{}/static/live/ffmpeg", node.rtmp));
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    assert!(
        streams.contains("codec_name=h264|width=640|height=360"),
        "{streams}"
    );
    assert!(streams.contains("codec_name=aac"), "{streams}");
    // The built-in test stream plays over RTMP too.
    let output = ffprobe_streams(&format!("rtmp://{}/static/clip", node.rtmp));
    assert!(output.contains("codec_name=h264|width=640"));
}

#[test]
fn hostile_stream_names_are_refused_and_the_log_stays_one_line_per_event() {
    let node = rtmp_node();
    let long = "a".repeat(60_000);
    let hostile = [
        "../../../etc/passwd",
        "a\0b",
        long.as_str(),
        "x\nERROR FORGED cluster key leaked",
    ];
    runtime().block_on(async {
        for key in hostile {
            let mut publisher = RtmpClient::connect(&node.rtmp, "live").await.unwrap();
            let error = publisher.publish(key).await.expect_err("refused");
            assert!(refused_as_bad_name(&error), "{error}");
            let mut player = RtmpClient::connect(&node.rtmp, "live").await.unwrap();
            assert!(player.play(key).await.is_err(), "play of {key:?}");
        }
    });
    // Nothing was started under a hostile name.
    let (_, _, streams) = http_get(node.http, "/streamer/api/v3/streams", &[]).unwrap();
    assert!(
        !streams.contains("passwd") && !streams.contains("FORGED"),
        "{streams}"
    );
    // HTTP paths follow the same rule.
    let (status, _, _) = http_get(node.http, "/live/a%0Ab/index.m3u8", &[]).unwrap();
    assert_eq!(status, 400);
    // The log never shows a line the client wrote.
    let log = node._node.log_tail();
    assert!(log.contains("rtmp publish refused"), "{log}");
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("ERROR FORGED"),
            "forged line: {line}"
        );
    }
}
