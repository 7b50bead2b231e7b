//! How the node writes instants and text into what it serves and logs: RFC 3339 times
//! (logs, events, the console, DASH manifests) and markup escaping (the console, the
//! player page, DASH manifests) — one way each, so every document agrees.

/// `2026-12-07T14:13:49.123Z` for Unix ms `at_ms`.
pub fn rfc3339(at_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(at_ms).unwrap_or(i64::MAX))
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `text` safe as HTML/XML text and as a quoted attribute value.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape_markup(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn instants_are_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_796_652_829_123), "2026-12-07T14:13:49.123Z");
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_markup_characters(text in ".{0,64}") {
            let escaped = escape_markup(&text);
            prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            let back = escaped
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            prop_assert_eq!(back, text);
        }
    }
}
