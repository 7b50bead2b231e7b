//! Fuzzes the RTMP chunk-stream guard and the FLV depacketizer with hostile input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut guard = flotilla::rtmp::guard::ChunkGuard::default();
    let _ = guard.feed(data);
    let mut depacketizer = flotilla::rtmp::flv::Depacketizer::new();
    let _ = depacketizer.video(data, 0);
    let _ = depacketizer.audio(data, 0);
});
