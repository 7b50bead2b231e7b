//! Source text and positions.
//!
//! A configuration is read from a main file plus the fragments of `FILE.d/*.conf`, so a
//! position must name its file. Spans are byte ranges into one [`SourceFile`]; line and
//! column are computed only when an error is rendered, which keeps the lexer and parser
//! free of bookkeeping and keeps spans small (`Copy`, 12 bytes). Each file's line index
//! ([`super::lines`]) is built once when it is added, so rendering any number of
//! diagnostics costs O(log lines) each, and a snippet quotes a bounded window of its line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::lines::LineIndex;

/// Index of a file inside a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileId(pub u32);

/// A byte range `[start, end)` inside one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        debug_assert!(start <= end, "span start {start} after end {end}");
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        debug_assert_eq!(self.file, other.file, "a span cannot cross files");
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// One configuration file as read from disk (or embedded in the binary).
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// How the file is named in messages: the path as the operator wrote it.
    pub name: String,
    pub text: String,
    /// Where its lines start, built once when the file is added.
    lines: LineIndex,
}

/// Every file that contributed to a configuration, so that errors can quote them.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

/// A resolved position, 1-based like every editor shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
    pub line_text: &'a str,
}

/// Longest stretch of a line a snippet quotes, in characters. A longer line (a whole
/// config written on one line, a pasted blob) is cut to a window around the span and
/// marked with `…`, so every rendered diagnostic stays a few lines of normal width.
pub const SNIPPET_MAX_CHARS: usize = 160;

/// Characters kept before the span when a long line is cut, for context.
pub const SNIPPET_CHARS_BEFORE: usize = 60;

impl SourceMap {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        self.files.push(SourceFile {
            name: name.into(),
            lines: LineIndex::new(&text),
            text,
        });
        FileId((self.files.len() - 1) as u32)
    }

    pub fn add_path(&mut self, path: &Path, text: String) -> FileId {
        self.add(path.display().to_string(), text)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(index, file)| (FileId(index as u32), file))
    }

    /// Line, column (in characters) and the text of the line holding `span.start`, in
    /// O(log lines + CHAR_BLOCK_BYTES) whatever the file's size.
    pub fn locate(&self, span: Span) -> Location<'_> {
        let file = self.file(span.file);
        let offset = (span.start as usize).min(file.text.len());
        let line = file.lines.line_of(offset);
        let range = file.lines.line_range(&file.text, line);
        let column = file.lines.chars_before(&file.text, offset)
            - file.lines.chars_before(&file.text, range.start)
            + 1;
        Location {
            file: &file.name,
            line: line + 1,
            column,
            line_text: &file.text[range],
        }
    }

    /// `file:line:column`, the form editors and terminals turn into links.
    pub fn position(&self, span: Span) -> String {
        let location = self.locate(span);
        format!("{}:{}:{}", location.file, location.line, location.column)
    }

    /// The quoted line with a caret under the span, rustc style; at most
    /// [`SNIPPET_MAX_CHARS`] of the line are quoted.
    pub fn snippet(&self, span: Span) -> String {
        let file = self.file(span.file);
        let text = file.text.as_str();
        let offset = (span.start as usize).min(text.len());
        let line = file.lines.line_of(offset);
        let range = file.lines.line_range(text, line);
        // A span starting in the `\r` of a line end points just past the quoted text.
        let offset = offset.min(range.end);
        let window_start = text[range.start..offset]
            .char_indices()
            .rev()
            .take(SNIPPET_CHARS_BEFORE)
            .last()
            .map_or(offset, |(index, _)| range.start + index);
        let window_end = text[window_start..range.end]
            .char_indices()
            .nth(SNIPPET_MAX_CHARS)
            .map_or(range.end, |(index, _)| window_start + index);
        let cut_before = window_start > range.start;
        let cut_after = window_end < range.end;
        let end = (span.end as usize).clamp(offset, window_end);
        let width = text[offset..end].chars().count().max(1);
        let column = usize::from(cut_before) + text[window_start..offset].chars().count();
        let gutter = (line + 1).to_string();
        let mut out = String::new();
        let pad = " ".repeat(gutter.len());
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(
            out,
            "{gutter} | {}{}{}",
            if cut_before { "…" } else { "" },
            &text[window_start..window_end],
            if cut_after { "…" } else { "" }
        );
        let _ = write!(out, "{pad} | {}{}", " ".repeat(column), "^".repeat(width));
        out
    }
}

/// Name of the fragment directory of a main config file: `flotilla.conf` → `flotilla.conf.d`.
pub fn fragment_dir(main: &Path) -> PathBuf {
    let mut name = main.as_os_str().to_owned();
    name.push(".d");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_file(text: &str) -> (SourceMap, FileId) {
        let mut sources = SourceMap::default();
        let id = sources.add("t.conf", text);
        (sources, id)
    }

    #[test]
    fn a_short_line_is_quoted_whole_with_the_caret_under_the_span() {
        let (sources, id) = one_file("http 80;\r\nstream é {\n  inptu x;\n}\n");
        let span = Span::new(id, 24, 29);
        assert_eq!(sources.position(span), "t.conf:3:3");
        assert_eq!(sources.snippet(span), "  |\n3 |   inptu x;\n  |   ^^^^^");
        // The line before keeps no `\r`, and a character counts once whatever its bytes.
        let location = sources.locate(Span::new(id, 20, 21));
        assert_eq!((location.line, location.column), (2, 10));
        assert_eq!(location.line_text, "stream é {");
    }

    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_span() {
        let text = format!("{}bogus on;{}", "a; ".repeat(10_000), " b;".repeat(10_000));
        let (sources, id) = one_file(&text);
        let start = 30_000;
        let span = Span::new(id, start, start + 5);
        assert_eq!(sources.position(span), format!("t.conf:1:{}", start + 1));
        let snippet = sources.snippet(span);
        let lines: Vec<&str> = snippet.lines().collect();
        let quoted = lines[1].strip_prefix("1 | ").unwrap();
        assert!(quoted.starts_with('…') && quoted.ends_with('…'), "{quoted}");
        assert_eq!(quoted.chars().count(), SNIPPET_MAX_CHARS + 2);
        let caret = lines[2].strip_prefix("  | ").unwrap();
        let caret_column = caret.find('^').unwrap();
        assert_eq!(caret.trim_start(), "^^^^^");
        // The caret sits under `bogus` in the quoted window.
        let under: String = quoted.chars().skip(caret_column).take(5).collect();
        assert_eq!(under, "bogus");
        assert_eq!(caret_column, SNIPPET_CHARS_BEFORE + 1);
    }

    #[test]
    fn a_span_at_the_end_of_the_file_gets_one_caret() {
        let (sources, id) = one_file("stream a {");
        let span = Span::new(id, 10, 10);
        assert_eq!(sources.position(span), "t.conf:1:11");
        assert_eq!(
            sources.snippet(span),
            "  |\n1 | stream a {\n  |           ^"
        );
    }
}
