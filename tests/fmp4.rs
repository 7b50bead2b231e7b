//! The fMP4 builders on real media: the test clip's H.264 and AAC frames as an init
//! segment and one fragment per GOP, read back by ffprobe and decoded by ffmpeg.

mod common;

use bytes::BytesMut;
use flotilla::media::fmp4::{
    Sample, TrackConfig, TrackKind, TrackRun, avc, fragment, init_segment,
};
use flotilla::media::frame::Frame;
use flotilla::media::source::ClipFrames;

/// 90 kHz: frame times are on it; the video track keeps it.
const VIDEO_TIMESCALE: u32 = 90_000;

/// A GOP's video frames as a run (90 kHz), durations from the next frame's time.
fn video_run(frames: &[Frame], next_dts: u64) -> TrackRun {
    let mut data = BytesMut::new();
    let mut samples = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let before = data.len();
        avc::length_prefixed(&frame.data, &mut data);
        let next = frames.get(i + 1).map_or(next_dts, |f| f.dts);
        samples.push(Sample {
            duration: (next - frame.dts) as u32,
            size: (data.len() - before) as u32,
            sync: frame.keyframe,
            composition_offset: (frame.pts - frame.dts) as u32,
        });
    }
    TrackRun {
        track_id: 1,
        base_decode_time: frames[0].dts,
        samples,
        data: data.freeze(),
    }
}

/// A GOP's AAC frames as a run at the sample rate: one sample per AAC frame (a frame of
/// the stream may hold several), 1,024 samples each.
fn audio_run(frames: &[Frame], rate: u32) -> TrackRun {
    let mut data = BytesMut::new();
    let mut samples = Vec::new();
    for frame in frames {
        for raw in flotilla::media::fmp4::aac::raw_frames(&frame.data) {
            data.extend_from_slice(raw);
            samples.push(Sample {
                duration: 1024,
                size: raw.len() as u32,
                sync: true,
                composition_offset: 0,
            });
        }
    }
    TrackRun {
        track_id: 2,
        base_decode_time: frames[0].dts * u64::from(rate) / 90_000,
        samples,
        data: data.freeze(),
    }
}

#[test]
fn the_test_clip_as_fmp4_is_read_and_decoded_by_ffmpeg() {
    let clip = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts")).unwrap();
    let mut source = ClipFrames::new(&clip).expect("the clip demuxes");
    // Three GOPs of frames, cut at video keyframes.
    let mut gops: Vec<Vec<Frame>> = Vec::new();
    while gops.len() < 4 {
        let (frame, _) = source.next_frame();
        if frame.starts_gop() {
            gops.push(Vec::new());
        }
        if let Some(gop) = gops.last_mut() {
            gop.push(frame);
        }
    }
    let first_key = &gops[0].iter().find(|f| f.starts_gop()).unwrap().data;
    let avcc = avc::decoder_configuration(first_key).expect("SPS and PPS at the keyframe");
    let info = flotilla::media::h264::video_info(first_key).expect("an SPS");
    let audio = gops[0].iter().find(|f| !f.codec.is_video()).expect("audio");
    let adts = flotilla::media::aac::parse_header(&audio.data).expect("ADTS");
    let rate = adts.sample_rate;
    let tracks = [
        TrackConfig {
            id: 1,
            timescale: VIDEO_TIMESCALE,
            kind: TrackKind::Avc {
                width: info.width as u16,
                height: info.height as u16,
                avcc,
            },
        },
        TrackConfig {
            id: 2,
            timescale: rate,
            kind: TrackKind::Aac {
                sample_rate: rate,
                channels: u16::from(adts.channels),
                asc: flotilla::media::fmp4::aac::audio_specific_config(&adts).unwrap(),
            },
        },
    ];
    let mut file = init_segment(&tracks).to_vec();
    // The last GOP only gives the others their end time.
    for (n, pair) in gops.windows(2).enumerate() {
        let (gop, next) = (&pair[0], &pair[1]);
        let video: Vec<Frame> = gop.iter().filter(|f| f.codec.is_video()).cloned().collect();
        let audio: Vec<Frame> = gop
            .iter()
            .filter(|f| !f.codec.is_video())
            .cloned()
            .collect();
        let next_video = next.iter().find(|f| f.codec.is_video()).unwrap().dts;
        let runs = [video_run(&video, next_video), audio_run(&audio, rate)];
        file.extend_from_slice(&fragment(n as u32 + 1, &runs));
    }
    let dir = common::TempDir::new("fmp4");
    let path = dir.write("clip.mp4", "");
    std::fs::write(&path, &file).unwrap();
    let path = path.to_str().unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate",
            "-of",
            "csv=p=0",
            path,
        ])
        .output()
        .expect("ffprobe is installed by scripts/test.sh");
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(
        streams.contains(&format!("h264,{},{}", info.width, info.height)),
        "{streams}"
    );
    assert!(streams.contains(&format!("aac,{rate}")), "{streams}");
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", path, "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
}
