//! Source text and positions.
//!
//! A configuration is read from a main file plus the fragments of `FILE.d/*.conf`, so a
//! position must name its file. Spans are byte ranges into one [`SourceFile`]; line and
//! column are computed only when an error is rendered, which keeps the lexer and parser
//! free of bookkeeping and keeps spans small (`Copy`, 12 bytes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

impl SourceMap {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push(SourceFile {
            name: name.into(),
            text: text.into(),
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

    /// Line, column (in characters) and the text of the line holding `span.start`.
    pub fn locate(&self, span: Span) -> Location<'_> {
        let file = self.file(span.file);
        let offset = (span.start as usize).min(file.text.len());
        let line_start = file.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = file.text[offset..]
            .find('\n')
            .map_or(file.text.len(), |i| offset + i);
        let line = file.text[..line_start].matches('\n').count() + 1;
        let column = file.text[line_start..offset].chars().count() + 1;
        Location {
            file: &file.name,
            line,
            column,
            line_text: file.text[line_start..line_end].trim_end_matches('\r'),
        }
    }

    /// `file:line:column`, the form editors and terminals turn into links.
    pub fn position(&self, span: Span) -> String {
        let location = self.locate(span);
        format!("{}:{}:{}", location.file, location.line, location.column)
    }

    /// The quoted line with a caret under the span, rustc style.
    pub fn snippet(&self, span: Span) -> String {
        let location = self.locate(span);
        let gutter = location.line.to_string();
        let width = if span.end > span.start {
            let file = self.file(span.file);
            let end = (span.end as usize).min(file.text.len());
            let start = (span.start as usize).min(end);
            file.text[start..end]
                .split('\n')
                .next()
                .map_or(1, |first| first.chars().count().max(1))
        } else {
            1
        };
        let mut out = String::new();
        let pad = " ".repeat(gutter.len());
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{gutter} | {}", location.line_text);
        let _ = write!(
            out,
            "{pad} | {}{}",
            " ".repeat(location.column - 1),
            "^".repeat(width)
        );
        out
    }
}

/// Name of the fragment directory of a main config file: `flotilla.conf` → `flotilla.conf.d`.
pub fn fragment_dir(main: &Path) -> PathBuf {
    let mut name = main.as_os_str().to_owned();
    name.push(".d");
    PathBuf::from(name)
}
