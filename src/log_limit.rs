//! Warnings an outsider can cause, written at most once per interval with a count.
//!
//! Some warnings are one per packet or per connection from anyone who can reach a port:
//! 100,000 random datagrams at the mesh port wrote 6,260 "mesh connection refused" lines
//! (issue 30.11), and a node out of file descriptors warned once per failed accept. The
//! log is how an operator sees the node, so a flood must not bury it or fill the disk.
//!
//! [`LogLimit`] is the pure rule (time comes in as `now`): the first warning of a kind is
//! written and opens a window of one interval; the ones inside the window are counted,
//! and when the window ends with a count, one summary line says how many were held back
//! ("N more … in the last 10s") and opens the next window. A steady flood therefore writes
//! one line per interval, and a single event is written at once, as before.
//! [`LimitedWarning`] is the shared handle a node keeps per kind: it reads time from the
//! node's [`Runtime`] and arranges the summary at the window's end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_otp::rt::{Instant, Runtime};

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write it: no line of this kind was written in the last interval.
    Write,
    /// Count it and write nothing. `flush_at` is set for the first event held back in a
    /// window: the summary is due then ([`LogLimit::flush`]).
    Hold { flush_at: Option<Instant> },
}

/// The events held back in one window, for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub suppressed: u64,
    /// How long the window lasted (one interval).
    pub over: Duration,
}

/// At most one line per interval for one kind of event.
#[derive(Debug, Clone)]
pub struct LogLimit {
    interval: Duration,
    /// When the current window opened (the last line written); `None` before the first.
    window_start: Option<Instant>,
    /// Events held back in the current window.
    suppressed: u64,
}

impl LogLimit {
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            window_start: None,
            suppressed: 0,
        }
    }

    /// Decides about one event at `now`.
    pub fn event(&mut self, now: Instant) -> Decision {
        match self.window_start {
            Some(start) if now < start + self.interval => {
                self.suppressed += 1;
                Decision::Hold {
                    flush_at: (self.suppressed == 1).then_some(start + self.interval),
                }
            }
            _ => {
                // A window that ended with a count had its summary flushed; one without
                // simply lapsed.
                self.window_start = Some(now);
                self.suppressed = 0;
                Decision::Write
            }
        }
    }

    /// At (or after) the end of the window: the summary of the events held back in it, if
    /// any. Writing the summary opens the next window at `now`, so a flood that goes on is
    /// summed up once per interval. Before the window's end it does nothing.
    pub fn flush(&mut self, now: Instant) -> Option<Summary> {
        let start = self.window_start?;
        if now < start + self.interval || self.suppressed == 0 {
            return None;
        }
        let summary = Summary {
            suppressed: self.suppressed,
            over: self.interval,
        };
        self.window_start = Some(now);
        self.suppressed = 0;
        Some(summary)
    }
}

/// How often a warning an outsider can trigger is written, at most: once per 10 s keeps a
/// flood to a few lines a minute while an operator watching the log still sees it at once.
pub const OUTSIDER_WARNING_INTERVAL_MS: u64 = 10_000;

/// One kind of warning with its limit, shared by every task that may write it.
pub struct LimitedWarning {
    /// The kind, as the summary line names it ("mesh connection refused").
    what: &'static str,
    limit: Mutex<LogLimit>,
}

impl LimitedWarning {
    /// A warning written at most once per [`OUTSIDER_WARNING_INTERVAL_MS`].
    pub fn outsider(what: &'static str) -> Arc<LimitedWarning> {
        LimitedWarning::new(what, Duration::from_millis(OUTSIDER_WARNING_INTERVAL_MS))
    }

    pub fn new(what: &'static str, interval: Duration) -> Arc<LimitedWarning> {
        Arc::new(LimitedWarning {
            what,
            limit: Mutex::new(LogLimit::new(interval)),
        })
    }

    /// Calls `write` (which writes the warning) when this kind may be written now;
    /// otherwise counts the event and, for the first one held back, schedules the summary
    /// on `runtime` at the window's end.
    pub fn warn(self: &Arc<Self>, runtime: &Runtime, write: impl FnOnce()) {
        let decision = self.lock().event(runtime.now());
        match decision {
            Decision::Write => write(),
            Decision::Hold { flush_at: None } => {}
            Decision::Hold {
                flush_at: Some(deadline),
            } => {
                let warning = self.clone();
                let clock = runtime.clone();
                runtime.spawn("log-limit-summary", async move {
                    tokio::time::sleep_until(deadline).await;
                    let summary = warning.lock().flush(clock.now());
                    if let Some(summary) = summary {
                        warning.write_summary(summary);
                    }
                });
            }
        }
    }

    fn write_summary(&self, summary: Summary) {
        tracing::warn!(
            suppressed = summary.suppressed,
            "{}: {} more suppressed in the last {}s",
            self.what,
            summary.suppressed,
            summary.over.as_secs()
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogLimit> {
        // A poisoned lock only means a writer panicked; the counts are still counts.
        self.limit.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn the_first_is_written_the_rest_of_the_window_counted_then_summed_up() {
        let mut limit = LogLimit::new(INTERVAL);
        let t0 = Runtime::deterministic(1, 0).now();
        assert_eq!(limit.event(t0), Decision::Write);
        assert_eq!(
            limit.event(t0 + Duration::from_secs(1)),
            Decision::Hold {
                flush_at: Some(t0 + INTERVAL)
            }
        );
        for second in 2..10 {
            assert_eq!(
                limit.event(t0 + Duration::from_secs(second)),
                Decision::Hold { flush_at: None }
            );
        }
        assert_eq!(limit.flush(t0 + Duration::from_secs(9)), None, "too early");
        assert_eq!(
            limit.flush(t0 + INTERVAL),
            Some(Summary {
                suppressed: 9,
                over: INTERVAL
            })
        );
        assert_eq!(limit.flush(t0 + INTERVAL), None, "summed up once");
        // The summary opened a new window: a flood that goes on stays held back...
        assert_eq!(
            limit.event(t0 + INTERVAL + Duration::from_secs(1)),
            Decision::Hold {
                flush_at: Some(t0 + 2 * INTERVAL)
            }
        );
        // ...and after a quiet window the next event is written at once.
        assert_eq!(
            limit.flush(t0 + 2 * INTERVAL).map(|s| s.suppressed),
            Some(1)
        );
        assert_eq!(limit.flush(t0 + 3 * INTERVAL), None);
        assert_eq!(limit.event(t0 + 3 * INTERVAL), Decision::Write);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_event_per_interval_is_always_written() {
        let mut limit = LogLimit::new(INTERVAL);
        let t0 = Runtime::deterministic(1, 0).now();
        for n in 0..5 {
            assert_eq!(limit.event(t0 + INTERVAL * n), Decision::Write);
            assert_eq!(limit.flush(t0 + INTERVAL * n + INTERVAL), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_warning_writes_once_and_flushes_the_count_at_the_window_end() {
        let runtime = Runtime::deterministic(1, 0);
        let warning = LimitedWarning::new("test warning", INTERVAL);
        let mut written = 0;
        for _ in 0..1_000 {
            warning.warn(&runtime, || written += 1);
        }
        assert_eq!(written, 1);
        tokio::time::sleep(INTERVAL + Duration::from_millis(1)).await;
        // The summary task ran and opened a new window: the count is back to zero.
        let state = warning.lock().clone();
        assert_eq!(state.suppressed, 0);
        assert_eq!(
            state.window_start,
            Some(runtime.now() - Duration::from_millis(1))
        );
    }
}
