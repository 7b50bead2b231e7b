//! Flussonic-compatible configuration: text → statements → typed model, and back.
//!
//! The pipeline, each stage in its own module:
//! 1. [`source`]: the main file plus `FILE.d/*.conf` fragments, merged in name order.
//! 2. [`lexer`] and [`syntax`]: nginx-like statements, bounded in size and depth.
//! 3. [`schema`]: statements → [`model::Config`], driven by the [`directives`] registry.
//! 4. [`check`]: whole-config checks (references, impossible combinations).
//! 5. [`print`]: the canonical text, which parses back to the same model.
//!
//! Loading never panics on any input (property test and fuzz target) and reports every
//! problem with file, line, column and the quoted line.

pub mod check;
pub mod declared;
pub mod diagnostic;
pub mod directives;
pub mod identity;
pub mod lexer;
pub mod lines;
pub mod model;
pub mod print;
pub mod schema;
pub mod source;
pub mod syntax;
pub mod values;

use std::path::{Path, PathBuf};

pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use model::Config;
pub use source::SourceMap;

/// Largest config file accepted (main file or fragment): configs of thousands of streams
/// are a few megabytes; anything bigger is a mistake (a video file passed as `-c`).
pub const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Most fragments read from `FILE.d/`: far above any real deployment, and it bounds the
/// work a misdirected directory can cause.
pub const MAX_FRAGMENTS: usize = 1024;

/// Why a config file or fragment directory could not be read, reported as a diagnostic
/// without a span: the operator's files are at fault (a wrong path, a video passed as
/// `-c`, a file the node may not read).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read (missing, permissions, IO).
    #[error("cannot read config file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Larger than [`MAX_CONFIG_FILE_BYTES`].
    #[error("config file {} is {size} bytes; the limit is {MAX_CONFIG_FILE_BYTES}", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    /// Not UTF-8; the offset of the first bad byte.
    #[error("config file {} is not UTF-8 text (bad byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    /// The `FILE.d/` directory cannot be listed.
    #[error("cannot read config fragment directory {}: {source}", dir.display())]
    FragmentDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// More than [`MAX_FRAGMENTS`] fragments.
    #[error("{} holds more than {MAX_FRAGMENTS} .conf fragments", dir.display())]
    TooManyFragments { dir: PathBuf },
}

impl crate::error::Classified for FileError {
    /// The operator chose the file; it reaches the top as a config error (exit code 1).
    fn fault(&self) -> crate::error::Fault {
        crate::error::Fault::Config
    }
}

/// A configuration that loaded, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    pub sources: SourceMap,
    /// The directory of the main config file: relative file paths in the config (the TLS
    /// certificate and key) are read from there. `None` for a config from text.
    pub base_dir: Option<PathBuf>,
}

impl LoadedConfig {
    /// `path` as the config means it: relative paths are beside the config file.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        match &self.base_dir {
            Some(dir) if Path::new(path).is_relative() => dir.join(path),
            _ => PathBuf::from(path),
        }
    }

    /// The TLS certificate and key files of the https and rtmps listeners.
    pub fn tls_files(&self) -> (PathBuf, PathBuf) {
        let config = &self.config;
        (
            self.resolve_path(
                config
                    .tls_certificate
                    .as_deref()
                    .unwrap_or(crate::defaults::TLS_CERTIFICATE_FILE),
            ),
            self.resolve_path(
                config
                    .tls_key
                    .as_deref()
                    .unwrap_or(crate::defaults::TLS_KEY_FILE),
            ),
        )
    }

    /// Warnings rendered one per line, for start-up logs (at most
    /// [`diagnostic::MAX_SHOWN_DIAGNOSTICS`], then one line counting the rest).
    pub fn warning_lines(&self) -> Vec<String> {
        let (shown, omitted) = diagnostic::shown(&self.warnings);
        shown
            .iter()
            .map(|w| w.render_short(&self.sources))
            .chain(omitted)
            .collect()
    }
}

/// Options that change how a config is checked.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions<'a> {
    /// The name the node runs under, when it comes from outside the file.
    pub runtime_hostname: Option<&'a str>,
}

/// Loads a config from text (no fragments). Used by tests, the fuzz target and the embedded
/// default config.
pub fn load_str(name: &str, text: &str) -> Result<LoadedConfig, ConfigErrors> {
    let mut sources = SourceMap::default();
    let id = sources.add(name, text);
    load_sources(sources, vec![id], &LoadOptions::default())
}

/// Loads `path` and the fragments of `path.d/*.conf`.
pub fn load_file(path: &Path, options: &LoadOptions<'_>) -> Result<LoadedConfig, ConfigErrors> {
    let mut sources = SourceMap::default();
    let fail = |sources: SourceMap, error: FileError| ConfigErrors {
        diagnostics: vec![Diagnostic::global(error.to_string())],
        sources,
    };
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(error) => return Err(fail(sources, error)),
    };
    let mut ids = vec![sources.add_path(path, text)];
    let fragment_dir = source::fragment_dir(path);
    if fragment_dir.is_dir() {
        let fragments = match list_fragments(&fragment_dir) {
            Ok(fragments) => fragments,
            Err(error) => return Err(fail(sources, error)),
        };
        for fragment in fragments {
            match read_bounded(&fragment) {
                Ok(text) => ids.push(sources.add_path(&fragment, text)),
                Err(error) => return Err(fail(sources, error)),
            }
        }
    }
    let mut loaded = load_sources(sources, ids, options)?;
    loaded.base_dir = Some(match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    });
    Ok(loaded)
}

fn read_bounded(path: &Path) -> Result<String, FileError> {
    let unreadable = |source| FileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_CONFIG_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|e| FileError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// `*.conf` files of the fragment directory, in name order.
fn list_fragments(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let unlistable = |source| FileError::FragmentDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut fragments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unlistable)? {
        let path = entry.map_err(unlistable)?.path();
        if path.extension().is_some_and(|ext| ext == "conf") && path.is_file() {
            fragments.push(path);
            if fragments.len() > MAX_FRAGMENTS {
                return Err(FileError::TooManyFragments {
                    dir: dir.to_path_buf(),
                });
            }
        }
    }
    fragments.sort();
    Ok(fragments)
}

fn load_sources(
    sources: SourceMap,
    ids: Vec<source::FileId>,
    options: &LoadOptions<'_>,
) -> Result<LoadedConfig, ConfigErrors> {
    let mut reader = schema::Reader::default();
    let mut config = Config::default();
    for id in ids {
        match syntax::parse(id, &sources.file(id).text) {
            Ok(statements) => reader.read_global(&statements, &mut config),
            Err(diagnostic) => reader.diagnostics.push(diagnostic),
        }
    }
    check::check(&config, &mut reader, options.runtime_hostname);
    let mut diagnostics = std::mem::take(&mut reader.diagnostics);
    for (name, (span, uses)) in &reader.not_active {
        let times = if *uses == 1 {
            String::new()
        } else {
            format!(" ({uses} uses)")
        };
        diagnostics.push(Diagnostic::warning(
            *span,
            format!("directive `{name}` is parsed but not active yet: it has no effect{times}"),
        ));
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        diagnostics.sort_by_key(|d| (!d.is_error(), d.span.map(|s| (s.file.0, s.start))));
        return Err(ConfigErrors {
            diagnostics,
            sources,
        });
    }
    Ok(LoadedConfig {
        config,
        warnings: diagnostics,
        sources,
        base_dir: None,
    })
}

#[cfg(test)]
mod tests;
