//! Stream names: one rule at every entry.
//!
//! A name arrives from the config, from an RTMP publisher or player (app and key), and in
//! every HTTP path. It becomes a URL path, a key in the node's maps, a word in the logs
//! and, later, a file name, so the same rule holds everywhere: Latin letters, digits,
//! `.`, `-`, `_`, and `/` between non-empty segments, none of them `.` or `..`, at most
//! [`MAX_STREAM_NAME_BYTES`]. Anything else (a newline that would forge a log line, a
//! `NUL`, a traversal, 60,000 characters) is refused where it enters, and the refusal
//! quotes it escaped.

/// Longest stream name accepted: names become URL paths, log fields and file names.
pub const MAX_STREAM_NAME_BYTES: usize = 256;

/// The rule, for messages.
pub const STREAM_NAME_RULE: &str = "letters, digits, `.`, `-`, `_` and `/` between segments (no `.` or `..` segment), at most 256 bytes";

/// Why a name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an empty stream name")]
    Empty,
    #[error("a stream name of {0} bytes (at most {MAX_STREAM_NAME_BYTES})")]
    TooLong(usize),
    #[error("a stream name with a character outside {STREAM_NAME_RULE}")]
    Character,
    #[error("a stream name with an empty, `.` or `..` segment")]
    Segment,
}

/// Checks `name` against the rule.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_STREAM_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if !name.bytes().all(allowed_byte) {
        return Err(NameError::Character);
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(NameError::Segment);
    }
    Ok(())
}

/// Whether `byte` may appear in a stream name (or in a media path under one).
pub fn allowed_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'/')
}

/// `text` as a log field or message may quote it: at most [`MAX_STREAM_NAME_BYTES`] of
/// it, control characters and quotes escaped (Rust's debug form).
pub fn quoted(text: &str) -> String {
    let cut = text
        .char_indices()
        .map(|(at, _)| at)
        .take_while(|at| *at <= MAX_STREAM_NAME_BYTES)
        .last()
        .unwrap_or(0);
    if text.len() > MAX_STREAM_NAME_BYTES {
        format!("{:?}… ({} bytes)", &text[..cut], text.len())
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_names_pass() {
        for name in ["cam01", "live/news", "a.b-c_d/2", "ORIGIN/x.y"] {
            assert_eq!(check(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("live/../../../etc/passwd"), Err(NameError::Segment));
        assert_eq!(check("live/./x"), Err(NameError::Segment));
        assert_eq!(check("/live"), Err(NameError::Segment));
        assert_eq!(check("live//x"), Err(NameError::Segment));
        assert_eq!(check("live/a\0b"), Err(NameError::Character));
        assert_eq!(check("live/a\nERROR forged"), Err(NameError::Character));
        assert_eq!(check("live/a b"), Err(NameError::Character));
        assert_eq!(check("live/ä"), Err(NameError::Character));
        assert_eq!(check(&"a".repeat(60_000)), Err(NameError::TooLong(60_000)));
        assert_eq!(check(&"a".repeat(MAX_STREAM_NAME_BYTES)), Ok(()));
    }

    #[test]
    fn quoting_escapes_and_bounds() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = quoted(&"é".repeat(1000));
        assert!(long.len() < MAX_STREAM_NAME_BYTES + 40, "{}", long.len());
        assert!(long.ends_with("(2000 bytes)"));
    }

    proptest! {
        #[test]
        fn an_accepted_name_has_no_control_character_and_no_traversal(name in "\\PC{0,300}") {
            if check(&name).is_ok() {
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!(!name.split('/').any(|s| s == ".."));
                prop_assert!(name.len() <= MAX_STREAM_NAME_BYTES);
            }
            let quoted = quoted(&name);
            prop_assert!(!quoted.contains('\n') && !quoted.contains('\r'));
        }
    }
}
