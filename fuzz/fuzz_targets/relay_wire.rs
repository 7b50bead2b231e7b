//! Fuzzes the relay frame decoder: no input panics, and anything it accepts re-encodes to
//! a frame that decodes to the same relay frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = flotilla::mesh::wire::relay::decode(data) {
        let (mut bytes, payload) =
            flotilla::mesh::wire::relay::encode(&frame).expect("an accepted frame re-encodes");
        bytes.extend_from_slice(&payload);
        assert_eq!(
            flotilla::mesh::wire::relay::decode(&bytes).expect("re-encoded frame decodes"),
            frame
        );
    }
});
