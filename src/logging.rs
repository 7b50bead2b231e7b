//! Logging set-up: `loglevel` from the config, overridden by `RUST_LOG` when set.

use tracing_subscriber::EnvFilter;

use crate::config::model::LogLevel;

/// The tracing filter for a Flussonic log level. `notice` has no tracing equivalent and
/// maps to info, the level that carries notices.
pub fn filter_for(level: Option<LogLevel>) -> &'static str {
    match level.unwrap_or(LogLevel::Info) {
        LogLevel::Debug => "debug,hyper=info,h2=info,quinn=info,rustls=info",
        LogLevel::Info | LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error => "error",
    }
}

/// Installs the global subscriber. Logs go to stderr; stdout stays for command output.
pub fn init(level: Option<LogLevel>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter_for(level)));
    // A second call (tests that start several nodes in one process) keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
