//! Fuzzes what a WHIP/WHEP client sends: the SDP offer (bounds, UTF-8, media sections,
//! str0m's parser) and the request path naming the stream, side and resource.
#![no_main]

use flotilla::http::webrtc::target;
use flotilla::webrtc::offer::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    let _ = target(&String::from_utf8_lossy(data));
});
