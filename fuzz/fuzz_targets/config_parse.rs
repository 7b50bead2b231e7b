//! Fuzzes the whole config pipeline: lexer, parser, schema, checks, and the printer.
//! Properties: no input panics; an accepted config prints to text that loads back to the
//! same model; rendering an error report never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match flotilla::config::load_str("fuzz.conf", text) {
        Ok(loaded) => {
            let printed = flotilla::config::print::print(&loaded.config);
            let again = flotilla::config::load_str("printed.conf", &printed)
                .unwrap_or_else(|errors| panic!("printed config does not load:\n{printed}\n{errors}"));
            assert_eq!(again.config, loaded.config, "print changed the model:\n{printed}");
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
