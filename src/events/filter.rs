//! Which events a sink takes: its `level` and its `only`/`except` filters (Flussonic's
//! rules: a filter is a set of conditions `field=value,value…`; every condition must
//! match, any value of a condition may; `*` in a value matches any run of characters).
//! Pure functions of the event and the sink's config.

use crate::config::model::{EventFilter, EventLevel};

/// What a filter reads of an event: a field's value as text, if the event has it.
pub trait Fields {
    fn field(&self, name: &str) -> Option<String>;
    fn level(&self) -> EventLevel;
}

/// A sink's selection.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The least severe level taken (`None`: every level).
    pub level: Option<EventLevel>,
    pub only: Vec<EventFilter>,
    pub except: Vec<EventFilter>,
}

impl Selection {
    /// Whether the sink takes `event`.
    pub fn takes(&self, event: &impl Fields) -> bool {
        if self.level.is_some_and(|least| event.level() < least) {
            return false;
        }
        let matches = |filter: &EventFilter| {
            filter.conditions.iter().all(|(field, values)| {
                event
                    .field(field)
                    .is_some_and(|value| values.iter().any(|pattern| wildcard(pattern, &value)))
            })
        };
        (self.only.is_empty() || self.only.iter().any(matches)) && !self.except.iter().any(matches)
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Sample {
        event: &'static str,
        media: &'static str,
        level: EventLevel,
    }

    impl Fields for Sample {
        fn field(&self, name: &str) -> Option<String> {
            match name {
                "event" => Some(self.event.into()),
                "media" => Some(self.media.into()),
                _ => None,
            }
        }
        fn level(&self) -> EventLevel {
            self.level
        }
    }

    fn filter(conditions: &[(&str, &[&str])]) -> EventFilter {
        EventFilter {
            conditions: conditions
                .iter()
                .map(|(field, values)| {
                    (
                        field.to_string(),
                        values.iter().map(|v| v.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard("source_*", "source_lost"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*b*c", "a-b-c"));
        assert!(wildcard("cam*", "cam"));
        assert!(!wildcard("a*b", "ab-"));
        assert!(!wildcard("stream_opened", "stream_opened2"));
        assert!(!wildcard("*ab*ab", "xab"));
    }

    #[test]
    fn only_and_except_follow_flussonics_rules() {
        let lost = Sample {
            event: "source_lost",
            media: "cam1",
            level: EventLevel::Warning,
        };
        let opened = Sample {
            event: "stream_opened",
            media: "news",
            level: EventLevel::Info,
        };
        let selection = Selection {
            level: None,
            only: vec![filter(&[("event", &["source_*", "stream_closed"])])],
            except: vec![filter(&[("media", &["news"])])],
        };
        assert!(selection.takes(&lost));
        assert!(!selection.takes(&opened));
        // Every condition of a filter must hold; a missing field does not match.
        let both = Selection {
            only: vec![filter(&[("event", &["source_lost"]), ("media", &["cam*"])])],
            ..Selection::default()
        };
        assert!(both.takes(&lost));
        let missing = Selection {
            only: vec![filter(&[("peer", &["*"])])],
            ..Selection::default()
        };
        assert!(!missing.takes(&lost));
        let warnings = Selection {
            level: Some(EventLevel::Warning),
            ..Selection::default()
        };
        assert!(warnings.takes(&lost) && !warnings.takes(&opened));
    }

    proptest! {
        #[test]
        fn a_pattern_without_stars_is_equality(a in "[a-z_]{0,8}", b in "[a-z_]{0,8}") {
            prop_assert_eq!(wildcard(&a, &b), a == b);
        }

        #[test]
        fn a_text_matches_itself_with_any_part_starred(text in "[a-z]{1,12}", cut in 0usize..12) {
            let cut = cut.min(text.len());
            let pattern = format!("{}*{}", &text[..cut], &text[cut..]);
            prop_assert!(wildcard(&pattern, &text));
            let surrounded = format!("*{}*", text);
            prop_assert!(wildcard(&surrounded, &text));
        }
    }
}
