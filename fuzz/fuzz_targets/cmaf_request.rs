//! Fuzzes what a viewer's CMAF request names: the resource in its path (LL-HLS
//! playlists, inits, segments, parts, the DASH manifest) and the LL-HLS delivery
//! directives in its query, and the readiness decided from them.
#![no_main]

use flotilla::media::cmaf::playlist::resource;
use flotilla::media::llhls::{Progress, directives, readiness};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    let _ = resource(path);
    if let Ok(found) = directives(Some(query)) {
        let _ = readiness(
            &found,
            Progress {
                last_msn: 100,
                parts_of_last: 3,
            },
        );
    }
});
