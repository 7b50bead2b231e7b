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

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rendered: Vec<String> = self
            .diagnostics
            .iter()
            .map(|d| d.render(&self.sources))
            .collect();
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

/// The known name nearest to `word`, if it is near enough to be a plausible typo.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if word.chars().count() > MAX_SUGGESTION_INPUT_CHARS {
        return None;
    }
    let word_lower = word.to_ascii_lowercase();
    let (best, distance) = known
        .into_iter()
        .map(|candidate| (candidate, edit_distance(&word_lower, candidate)))
        .min_by_key(|(candidate, distance)| (*distance, candidate.len()))?;
    // A third of the word may be wrong (at least one edit, at most three).
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
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("inptu", "input"), 1);
    }
}
