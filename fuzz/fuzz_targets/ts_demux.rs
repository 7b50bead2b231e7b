//! Fuzzes the MPEG-TS demuxer and the frame conversion over arbitrary bytes in arbitrary
//! chunkings: no panic, bounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut frames = flotilla::media::source::TsFrames::new(0);
    frames.push(&data[..split]);
    frames.push(&data[split..]);
    while frames.pop().is_some() {}
});
