//! Fuzzes the PROXY protocol header parser (v1 text, v2 binary) with hostile input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flotilla::proxy_protocol::parse(data);
});
