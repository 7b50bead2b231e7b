//! Where a node's config came from, so that a reload reads the same place again.

use std::path::PathBuf;

use crate::config::{ConfigErrors, LoadOptions, LoadedConfig, load_file};

/// The node's config source.
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    /// A file (and its `.conf.d` fragments), checked for the node's runtime hostname.
    File {
        path: PathBuf,
        runtime_hostname: Option<String>,
    },
    /// Text (the embedded default, a benchmark's): nothing to read again.
    Text,
}

impl ConfigOrigin {
    /// Reads and checks the config again; `None` for text.
    pub fn load(&self) -> Option<Result<LoadedConfig, ConfigErrors>> {
        match self {
            ConfigOrigin::File {
                path,
                runtime_hostname,
            } => Some(load_file(
                path,
                &LoadOptions {
                    runtime_hostname: runtime_hostname.as_deref(),
                },
            )),
            ConfigOrigin::Text => None,
        }
    }
}
