//! Configuration diagnostics: errors and warnings that point into the operator's files.
//!
//! Every problem the loader finds is the operator's to fix, so each diagnostic says where
//! (file, line, column, the quoted line with a caret), what is wrong, what was expected and,
//! when we can guess, what was probably meant. Loading collects every error it can instead
//! of stopping at the first, so one `check-config` run shows the whole list.

use std::fmt;

use super::source::{SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Where it is; `None` for findings about the whole configuration (a missing file).
    pub span: Option<Span>,
    /// What the grammar or the directive expected at that place.
    pub expected: Option<String>,
    /// A suggestion: the nearest known name, or how to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            expected: None,
            help: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    /// An error that belongs to no single place (an unreadable file).
    pub fn global(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: None,
            expected: None,
            help: None,
        }
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Diagnostic {
        self.expected = Some(expected.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Multi-line rendering with the quoted source line.
    pub fn render(&self, sources: &SourceMap) -> String {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = match self.span {
            Some(span) => format!(
                "{}: {label}: {}\n{}",
                sources.position(span),
                self.message,
                sources.snippet(span)
            ),
            None => format!("{label}: {}", self.message),
        };
        if let Some(expected) = &self.expected {
            out.push_str(&format!("\n  = expected {expected}"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  = help: {help}"));
        }
        out
    }

    /// One line, for logs: `file:line:col: warning: message`.
    pub fn render_short(&self, sources: &SourceMap) -> String {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.span {
            Some(span) => format!("{}: {label}: {}", sources.position(span), self.message),
            None => format!("{label}: {}", self.message),
        }
    }
}

/// The errors that made a configuration unusable, with the sources needed to show them.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
}

/// Most diagnostics one report renders. A file with hundreds of thousands of bad lines (a
/// generated file gone wrong, a binary passed as `-c`) would otherwise print five lines
/// for each; the first hundred show what is wrong, and one last line counts the rest.
pub const MAX_SHOWN_DIAGNOSTICS: usize = 100;

/// The diagnostics a report shows (the first [`MAX_SHOWN_DIAGNOSTICS`]), and the line that
/// stands for the others, if any.
pub fn shown(diagnostics: &[Diagnostic]) -> (&[Diagnostic], Option<String>) {
    if diagnostics.len() <= MAX_SHOWN_DIAGNOSTICS {
        return (diagnostics, None);
    }
    let (shown, rest) = diagnostics.split_at(MAX_SHOWN_DIAGNOSTICS);
    let errors = rest.iter().filter(|d| d.is_error()).count();
    let warnings = rest.len() - errors;
    let counted = |count: usize, what: &str| match count {
        1 => format!("1 {what}"),
        _ => format!("{count} {what}s"),
    };
    let parts: Vec<String> = [(errors, "error"), (warnings, "warning")]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| counted(count, what))
        .collect();
    let summary = format!("… and {} more ({}) not shown", rest.len(), parts.join(", "));
    (shown, Some(summary))
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, omitted) = shown(&self.diagnostics);
        let mut rendered: Vec<String> = shown.iter().map(|d| d.render(&self.sources)).collect();
        rendered.extend(omitted);
        write!(f, "{}", rendered.join("\n\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you
/// mean" suggestions: `inptu` is one edit from `input`. Inputs are directive names, so the
/// quadratic cost is irrelevant; it is still bounded by [`MAX_SUGGESTION_INPUT_CHARS`].
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            table[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (table[(i - 1) * width + j] + 1)
                    .min(table[i * width + j - 1] + 1)
                    .min(table[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(table[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    table[a.len() * width + b.len()]
}

/// Words longer than this are never matched against known names: nobody mistypes a
/// directive into 64 characters, and it bounds the work an abusive file can cause.
const MAX_SUGGESTION_INPUT_CHARS: usize = 64;

/// The known name nearest to `word`, if it is near enough to be a plausible typo: the
/// name at the least edit distance (the shorter one on a tie, else the first), taken when
/// a third of the word at most is wrong, or when one of the two begins the other.
///
/// Every unknown directive asks this of the whole registry, so a file of 200,000 unknown
/// lines made it the bulk of `check-config`'s time (issue 30.10). The answer is the same
/// as comparing with every name, but distances are computed only where they can matter:
/// an edit distance is at least the difference in length, and it is exactly that for a
/// name that begins the word or that the word begins. So the nearest such name bounds
/// the search, and names whose length differs by more than the bound (or than the
/// distance a typo may have, when there is no such name) are skipped.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_chars = word.chars().count();
    if word_chars > MAX_SUGGESTION_INPUT_CHARS {
        return None;
    }
    let word_lower = word.to_ascii_lowercase();
    // A third of the word may be wrong (at least one edit, at most three).
    let allowed = (word_chars / 3).clamp(1, 3);
    let is_prefix = |name: &str| name.starts_with(&word_lower) || word_lower.starts_with(name);
    let known: Vec<(&str, usize)> = known
        .into_iter()
        .map(|name| (name, name.chars().count()))
        .collect();
    let prefix_bound = known
        .iter()
        .filter(|(name, _)| word.len() >= 3 && is_prefix(name))
        .map(|(_, chars)| chars.abs_diff(word_chars))
        .min();
    let bound = prefix_bound.map_or(allowed, |distance| distance.max(allowed));
    let (best, distance) = known
        .iter()
        .filter(|(_, chars)| chars.abs_diff(word_chars) <= bound)
        .map(|(name, _)| (*name, edit_distance(&word_lower, name)))
        .min_by_key(|(name, distance)| (*distance, name.len()))?;
    (distance <= allowed || (is_prefix(best) && word.len() >= 3)).then_some(best)
}

/// The answer of [`nearest`] by comparing `word` with every name, as it was computed
/// before the search was bounded; the tests hold the two equal.
#[cfg(test)]
fn nearest_by_every_name<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.chars().count() > MAX_SUGGESTION_INPUT_CHARS {
        return None;
    }
    let word_lower = word.to_ascii_lowercase();
    let (best, distance) = known
        .into_iter()
        .map(|candidate| (candidate, edit_distance(&word_lower, candidate)))
        .min_by_key(|(candidate, distance)| (*distance, candidate.len()))?;
    let allowed = (word.chars().count() / 3).clamp(1, 3);
    let is_prefix = best.starts_with(&word_lower) || word_lower.starts_with(best);
    (distance <= allowed || (is_prefix && word.len() >= 3)).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_plausible_typos_only() {
        let known = ["input", "stream", "segment_duration", "cluster_ingest"];
        assert_eq!(nearest("inptu", known), Some("input"));
        assert_eq!(nearest("strem", known), Some("stream"));
        assert_eq!(nearest("segment_duraton", known), Some("segment_duration"));
        assert_eq!(nearest("cluster_ingst", known), Some("cluster_ingest"));
        assert_eq!(nearest("zzzzzz", known), None);
        assert_eq!(nearest(&"x".repeat(1000), known), None);
    }

    #[test]
    fn a_long_report_shows_the_first_diagnostics_and_counts_the_rest() {
        let span = Span::default();
        let mut diagnostics: Vec<Diagnostic> = (0..MAX_SHOWN_DIAGNOSTICS + 5)
            .map(|i| Diagnostic::error(span, format!("e{i}")))
            .collect();
        diagnostics.push(Diagnostic::warning(span, "w"));
        let (first, rest) = shown(&diagnostics);
        assert_eq!(first.len(), MAX_SHOWN_DIAGNOSTICS);
        assert_eq!(
            rest.as_deref(),
            Some("… and 6 more (5 errors, 1 warning) not shown")
        );
        let (all, none) = shown(&diagnostics[..MAX_SHOWN_DIAGNOSTICS]);
        assert_eq!((all.len(), none), (MAX_SHOWN_DIAGNOSTICS, None));
    }

    #[test]
    fn the_bounded_search_answers_like_comparing_with_every_name() {
        let known: Vec<&str> = super::super::directives::DIRECTIVES
            .iter()
            .map(|info| info.name)
            .chain(["a", "ab", "segment", "seg", "input_x"])
            .collect();
        let words = [
            "",
            "a",
            "ab",
            "abc",
            "se",
            "seg",
            "segm",
            "segment_duratio",
            "SEGMENT",
            "inptu",
            "input",
            "inputs",
            "input_",
            "in",
            "strem",
            "bogus_directive_17",
            "cluster_ingest_minority",
            "x",
            "zz",
            "é",
            "ségment",
            "max_bitrat",
            "hostnam",
        ];
        for word in words {
            assert_eq!(
                nearest(word, known.iter().copied()),
                nearest_by_every_name(word, known.iter().copied()),
                "{word}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_bounded_search_agrees_on_any_word(word in "[a-z_é]{0,24}") {
            let known = ["input", "stream", "segment_duration", "segment_count", "seg",
                "cluster_ingest", "peer", "prefix", "prefixes", "url", "ur"];
            proptest::prop_assert_eq!(
                nearest(&word, known),
                nearest_by_every_name(&word, known)
            );
        }
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("inptu", "input"), 1);
    }
}
