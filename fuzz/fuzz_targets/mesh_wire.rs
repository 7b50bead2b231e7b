//! Fuzzes the mesh wire decoder: no input panics, and anything it accepts re-encodes to
//! a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = flotilla::mesh::wire::decode(data) {
        let frame = flotilla::mesh::wire::encode(&message).expect("an accepted message re-encodes");
        assert_eq!(flotilla::mesh::wire::decode(&frame).expect("re-encoded frame decodes"), message);
    }
});
