//! Logging set-up: `loglevel` from the config, overridden by `RUST_LOG` when set.
//!
//! One event is one line. Fields may carry text from outside (a name a client sent, a
//! peer's error message); names are validated where they enter (`media::name`), and as a
//! second line of defence [`OneLine`] escapes every line break inside an event, so no
//! client can write a forged line into the log.

use tracing_subscriber::EnvFilter;

use crate::config::model::LogLevel;

/// The tracing filter for a Flussonic log level. `notice` has no tracing equivalent and
/// maps to info, the level that carries notices. retina (RTSP) notes at info what it
/// works around in every session (RTP-Info values ignored): two lines per camera
/// connection, so below debug only its warnings show.
pub fn filter_for(level: Option<LogLevel>) -> &'static str {
    match level.unwrap_or(LogLevel::Info) {
        LogLevel::Debug => "debug,hyper=info,h2=info,quinn=info,rustls=info",
        LogLevel::Info | LogLevel::Notice => "info,retina=warn",
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
        .with_writer(|| OneLine(std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// A writer that keeps each event on one line: a `\n` or `\r` inside an event is
/// written as `\\n` or `\\r`; only the event's final newline stays. tracing's formatter
/// writes each event with one `write_all`, so one call is one event.
pub struct OneLine<W>(pub W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match event.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (event, &b""[..]),
        };
        if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            self.0.write_all(event)?;
            return Ok(event.len());
        }
        let mut escaped = Vec::with_capacity(event.len() + 16);
        for &byte in body {
            match byte {
                b'\n' => escaped.extend_from_slice(b"\\n"),
                b'\r' => escaped.extend_from_slice(b"\\r"),
                other => escaped.push(other),
            }
        }
        escaped.extend_from_slice(end);
        self.0.write_all(&escaped)?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_event_stays_on_one_line() {
        let mut out = OneLine(Vec::new());
        out.write_all(b"INFO stream=live/a\nERROR FORGED cluster key leaked\r\n")
            .unwrap();
        out.write_all(b"INFO plain\n").unwrap();
        let text = String::from_utf8(out.0).unwrap();
        assert_eq!(
            text,
            "INFO stream=live/a\\nERROR FORGED cluster key leaked\\r\nINFO plain\n"
        );
        assert_eq!(text.lines().count(), 2);
    }
}
