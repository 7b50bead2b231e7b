//! One destination of an `event_sink` block: a webhook (its own delivery task, batches in
//! order, retried with backoff) or a `log://`/`jsonlog://` file (a [`LineLog`]).
//!
//! A webhook's events wait in a queue of at most `resend_limit` (default
//! [`DEFAULT_QUEUED_EVENTS`]); a full queue drops its oldest event and counts it, so a
//! dead or hanging receiver costs memory up to that bound and nothing else. The batch
//! being delivered is out of the queue and is retried until delivered (at least once:
//! a receiver that took a batch but did not answer gets it again).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_otp::rt::Runtime;
use tokio::sync::Notify;

use super::Encoded;
use super::filter::{Fields, Selection};
use super::webhook::{WebhookUrl, post};
use crate::config::model::EventSink;
use crate::logfile::LineLog;

/// Events a webhook keeps for delivery when `resend_limit` does not say.
pub const DEFAULT_QUEUED_EVENTS: usize = 10_000;
/// The most `resend_limit` may keep (memory: an event is a few hundred bytes).
pub const MAX_QUEUED_EVENTS: usize = 1_000_000;
/// Events per POST at most (Flussonic flushes a batch past 100).
pub const MAX_BATCH_EVENTS: usize = 100;
/// First retry delay after a failed POST; doubles up to `resend_timeout` (default
/// [`MAX_RETRY_DELAY`]).
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between two attempts when `resend_timeout` does not say.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How often a stopping node looks whether a webhook has delivered everything.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Why a sink cannot start (the operator's config, or the file system).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("event_sink {sink}: `{url}` is not supported ({why})")]
    Unsupported {
        sink: String,
        url: String,
        why: &'static str,
    },
    #[error("event_sink {sink}: cannot open {path}: {source}")]
    File {
        sink: String,
        path: String,
        source: std::io::Error,
    },
}

/// A sink's counters.
#[derive(Debug, Clone)]
pub struct SinkStats {
    pub sink: String,
    /// `http`, `log` or `jsonlog`.
    pub kind: &'static str,
    pub queued: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub failed_attempts: u64,
}

#[derive(Debug)]
enum Target {
    Webhook(Arc<Queue>),
    Log { log: LineLog, json: bool },
}

/// One destination.
#[derive(Debug)]
pub struct Sink {
    name: String,
    selection: Selection,
    target: Target,
}

/// A webhook's pending events and counters.
#[derive(Debug)]
pub struct Queue {
    events: Mutex<VecDeque<Arc<Encoded>>>,
    limit: usize,
    wake: Notify,
    closed: AtomicBool,
    /// A batch is out for delivery.
    busy: AtomicBool,
    delivered: AtomicU64,
    dropped: AtomicU64,
    failed_attempts: AtomicU64,
}

impl Sink {
    /// Starts the destination `url` of `config`.
    pub fn start(
        config: &EventSink,
        url: &str,
        resolve: &impl Fn(&str) -> std::path::PathBuf,
        runtime: &Runtime,
    ) -> Result<Sink, SinkError> {
        let selection = Selection {
            level: config.level,
            only: config.only.clone(),
            except: config.except.clone(),
        };
        let unsupported = |why| SinkError::Unsupported {
            sink: config.name.clone(),
            url: url.to_string(),
            why,
        };
        let file = |path: &str, json: bool| {
            let path = resolve(path);
            LineLog::open(&path)
                .map(|log| Target::Log { log, json })
                .map_err(|source| SinkError::File {
                    sink: config.name.clone(),
                    path: path.display().to_string(),
                    source,
                })
        };
        let target = if let Some(path) = url.strip_prefix("jsonlog://") {
            file(path, true)?
        } else if let Some(path) = url.strip_prefix("log://") {
            file(path, false)?
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let webhook = WebhookUrl::parse(url).map_err(|_| unsupported("not a usable URL"))?;
            let limit = config
                .resend_limit
                .map_or(DEFAULT_QUEUED_EVENTS, |n| n as usize)
                .clamp(1, MAX_QUEUED_EVENTS);
            let queue = Arc::new(Queue {
                events: Mutex::new(VecDeque::new()),
                limit,
                wake: Notify::new(),
                closed: AtomicBool::new(false),
                busy: AtomicBool::new(false),
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                failed_attempts: AtomicU64::new(0),
            });
            let delivery = Delivery {
                sink: config.name.clone(),
                url: webhook,
                queue: queue.clone(),
                throttle: config
                    .throttle_delay
                    .map_or(Duration::ZERO, |s| Duration::from_millis(s.millis)),
                max_retry_delay: config.resend_timeout.map_or(MAX_RETRY_DELAY, |s| {
                    Duration::from_millis(s.millis.max(1_000))
                }),
                outbound: crate::http::client::Outbound::new(runtime.clone()),
            };
            runtime.spawn("event-sink", delivery.run());
            Target::Webhook(queue)
        } else {
            return Err(unsupported(
                "use http(s)://…, log://PATH or jsonlog://PATH (Lua scripts are not run)",
            ));
        };
        Ok(Sink {
            name: config.name.clone(),
            selection,
            target,
        })
    }

    /// Takes `event` if the sink's filters do; never waits.
    pub fn offer(&self, event: &Arc<Encoded>) {
        if !self.selection.takes(event.as_ref()) {
            return;
        }
        match &self.target {
            Target::Log { log, json: true } => log.write(event.json.clone()),
            Target::Log { log, json: false } => log.write(text_line(event)),
            Target::Webhook(queue) => queue.push(event.clone()),
        }
    }

    pub fn stats(&self) -> SinkStats {
        match &self.target {
            Target::Webhook(queue) => SinkStats {
                sink: self.name.clone(),
                kind: "http",
                queued: queue.len() as u64,
                delivered: queue.delivered.load(Ordering::Relaxed),
                dropped: queue.dropped.load(Ordering::Relaxed),
                failed_attempts: queue.failed_attempts.load(Ordering::Relaxed),
            },
            Target::Log { log, json } => SinkStats {
                sink: self.name.clone(),
                kind: if *json { "jsonlog" } else { "log" },
                queued: 0,
                delivered: 0,
                dropped: log.dropped(),
                failed_attempts: 0,
            },
        }
    }

    /// No more events; the webhook delivers what it has.
    pub fn close(&self) {
        match &self.target {
            Target::Webhook(queue) => {
                queue.closed.store(true, Ordering::Relaxed);
                queue.wake.notify_one();
            }
            Target::Log { log, .. } => log.close(),
        }
    }

    /// Waits until the webhook has delivered everything, at most `grace`.
    pub async fn wait_drained(&self, grace: Duration) {
        if let Target::Webhook(queue) = &self.target {
            let drained = async {
                while queue.busy.load(Ordering::Relaxed) || queue.len() > 0 {
                    tokio::time::sleep(DRAIN_POLL).await;
                }
            };
            let _ = tokio::time::timeout(grace, drained).await;
        }
    }
}

/// `2026-12-07T14:13:49.123Z notice ingest_moved media=cam1 {…}` for `log://` files.
fn text_line(event: &Encoded) -> String {
    let time = crate::format::rfc3339(event.utc_ms);
    let media = event.field("media").unwrap_or_else(|| "-".into());
    format!(
        "{time} {} {} media={media} {}",
        event.level.name(),
        event.name,
        event.json
    )
}

impl Queue {
    fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn push(&self, event: Arc<Encoded>) {
        {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() >= self.limit {
                events.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            events.push_back(event);
        }
        self.wake.notify_one();
    }

    /// Up to [`MAX_BATCH_EVENTS`] from the front.
    fn take_batch(&self) -> Vec<Arc<Encoded>> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let n = events.len().min(MAX_BATCH_EVENTS);
        events.drain(..n).collect()
    }
}

/// A webhook's delivery task.
struct Delivery {
    sink: String,
    url: WebhookUrl,
    queue: Arc<Queue>,
    /// `throttle_delay`: how long to gather events before a POST of less than a batch.
    throttle: Duration,
    max_retry_delay: Duration,
    outbound: crate::http::client::Outbound,
}

impl Delivery {
    async fn run(self) {
        loop {
            // Wait for events (or the end).
            loop {
                if self.queue.len() > 0 {
                    break;
                }
                if self.queue.closed.load(Ordering::Relaxed) {
                    return;
                }
                self.queue.wake.notified().await;
            }
            if !self.throttle.is_zero()
                && self.queue.len() < MAX_BATCH_EVENTS
                && !self.queue.closed.load(Ordering::Relaxed)
            {
                tokio::time::sleep(self.throttle).await;
            }
            self.queue.busy.store(true, Ordering::Relaxed);
            let batch = self.queue.take_batch();
            self.deliver(&batch).await;
            self.queue.busy.store(false, Ordering::Relaxed);
        }
    }

    /// POSTs `batch` until the receiver takes it (the node's end stops retrying).
    async fn deliver(&self, batch: &[Arc<Encoded>]) {
        let mut body =
            String::with_capacity(batch.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2);
        body.push('[');
        for (i, event) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&event.json);
        }
        body.push(']');
        let body = bytes::Bytes::from(body);
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            match post(&self.url, body.clone(), &self.outbound).await {
                Ok(()) => {
                    self.queue
                        .delivered
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(error) => {
                    let attempts = self.queue.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    // One line per outage start, then every 10th attempt.
                    if attempts.is_multiple_of(10) {
                        tracing::warn!(sink = %self.sink, url = %self.url.text, %error, retry_in_ms = delay.as_millis() as u64, "event delivery failed; retrying");
                    }
                    if self.queue.closed.load(Ordering::Relaxed) {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_retry_delay);
                }
            }
        }
    }
}
