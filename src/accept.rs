//! What a listener does when `accept` fails.
//!
//! Out of file descriptors (EMFILE for the process, ENFILE for the system), `accept`
//! fails at once for as long as connections wait in the backlog: a listener that simply
//! tries again spins a core, and one that warns each time writes hundreds of "Too many
//! open files" lines a second (issue 30.7). Such a failure is answered by a short pause
//! and a warning written at most once per interval ([`crate::log_limit`]); the HTTP
//! listener first sheds a connection that has made no request (`http::shed`). A
//! connection the client aborted before it was accepted is no failure of the node: it is
//! passed over in silence.

use std::sync::Arc;
use std::time::Duration;

use flotilla_otp::rt::Runtime;

use crate::log_limit::LimitedWarning;

/// How long a listener pauses after `accept` failed for want of resources: long enough
/// not to spin, short enough that a descriptor freed meanwhile is used at once.
pub const ACCEPT_BACKOFF_MS: u64 = 100;

/// `errno` of "Too many open files" (the process's limit), on Linux and the BSDs.
const EMFILE: i32 = 24;
/// `errno` of "Too many open files in system".
const ENFILE: i32 = 23;

/// Whether `error` means the process (or the system) has no file descriptor left.
pub fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
}

/// Whether `error` concerns only the one connection (aborted or reset by its client
/// before it was accepted): the listener goes on at once.
pub fn connection_only(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

/// The accept failures of one listener, with their rate-limited warning.
#[derive(Clone)]
pub struct AcceptFailures {
    runtime: Runtime,
    warning: Arc<LimitedWarning>,
}

impl AcceptFailures {
    /// `what` names the listener in the warning ("http accept failed").
    pub fn new(runtime: Runtime, what: &'static str) -> AcceptFailures {
        AcceptFailures {
            runtime,
            warning: LimitedWarning::outsider(what),
        }
    }

    /// Deals with one failed `accept`: nothing for a connection-only failure, otherwise
    /// a (rate-limited) warning and [`ACCEPT_BACKOFF_MS`] of pause.
    pub async fn failed(&self, error: &std::io::Error) {
        if connection_only(error) {
            return;
        }
        self.warning.warn(&self.runtime, || {
            tracing::warn!(%error, "accept failed; pausing {ACCEPT_BACKOFF_MS} ms");
        });
        tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_is_told_from_a_lost_connection() {
        let emfile = std::io::Error::from_raw_os_error(EMFILE);
        assert!(out_of_descriptors(&emfile));
        assert!(!connection_only(&emfile));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            ENFILE
        )));
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert!(connection_only(&aborted));
        assert!(!out_of_descriptors(&aborted));
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_failure_pauses_and_a_lost_connection_does_not() {
        let failures = AcceptFailures::new(Runtime::deterministic(1, 0), "test accept failed");
        let started = Runtime::deterministic(1, 0).now();
        failures
            .failed(&std::io::Error::from(std::io::ErrorKind::ConnectionAborted))
            .await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        failures
            .failed(&std::io::Error::from_raw_os_error(EMFILE))
            .await;
        assert_eq!(started.elapsed(), Duration::from_millis(ACCEPT_BACKOFF_MS));
    }
}
