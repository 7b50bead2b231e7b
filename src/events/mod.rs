//! Events: what happened on the node, delivered to `event_sink` (old `notify`) blocks —
//! HTTP webhooks (batched JSON arrays), `log://` text files, `jsonlog://` JSON-lines
//! files — with each sink's `level`, `only` and `except` filters.
//!
//! Emitting never waits: an event is encoded once and appended to the bounded queue of
//! every sink that takes it ([`sink`]); each sink delivers its queue in order on its own
//! task, retrying a failed webhook with backoff. A full queue drops its oldest events
//! and counts them. Events come from where things happen (sessions, reloads, the node's
//! start and stop) and from [`watch`], which compares the node's shared state (streams,
//! their sources, the mesh view, the cluster_ingest board) with what it saw a moment
//! earlier. docs/events.md lists the events and their fields.

pub mod filter;
pub mod sink;
pub mod watch;
pub mod webhook;

use std::sync::{Arc, Mutex};

use flotilla_otp::rt::Runtime;
use serde_json::{Map, Value, json};

use crate::config::model::{EventLevel, EventSink};

/// An event before it is encoded: its name, severity, stream and other fields.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: &'static str,
    pub level: EventLevel,
    /// The stream it is about (`media`), if any.
    pub media: Option<String>,
    pub fields: Map<String, Value>,
}

impl Event {
    pub fn new(name: &'static str, level: EventLevel) -> Event {
        Event {
            name,
            level,
            media: None,
            fields: Map::new(),
        }
    }

    /// About stream `name`.
    pub fn media(mut self, name: &str) -> Event {
        self.media = Some(name.to_string());
        self
    }

    /// With field `name`.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Event {
        self.fields.insert(name.to_string(), value.into());
        self
    }
}

/// An event as sinks take it: encoded once, shared by every sink.
#[derive(Debug)]
pub struct Encoded {
    pub name: &'static str,
    pub level: EventLevel,
    /// When it was emitted, Unix ms (`utc_ms`).
    pub utc_ms: u64,
    /// The whole event as one JSON object.
    pub json: String,
    object: Map<String, Value>,
}

impl filter::Fields for Encoded {
    fn field(&self, name: &str) -> Option<String> {
        match self.object.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn level(&self) -> EventLevel {
        self.level
    }
}

/// The node's events: where they go. Cheap to clone; without sinks, emitting costs a
/// length check.
#[derive(Clone, Debug)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    server: String,
    /// This run of the node, so that (server, event_id) never repeats across restarts.
    incarnation: u64,
    /// The last event's number. Held while an event is numbered *and* handed to the
    /// sinks, so that two threads emitting at once cannot queue them out of `event_id`
    /// order (a receiver relies on it; the section is an encode and a queue push).
    sequence: Mutex<u64>,
    sinks: Vec<sink::Sink>,
    runtime: Runtime,
}

impl EventBus {
    /// A bus without sinks (emitting does nothing).
    pub fn none(runtime: Runtime) -> EventBus {
        EventBus::with_sinks("", runtime, Vec::new())
    }

    /// The sinks of `sinks` (already validated by the config check), started on
    /// `runtime`; `resolve` turns a sink's relative file path into the one to open.
    pub fn start(
        server: &str,
        runtime: Runtime,
        sinks: &[EventSink],
        resolve: impl Fn(&str) -> std::path::PathBuf,
    ) -> Result<EventBus, sink::SinkError> {
        let mut started = Vec::new();
        for config in sinks {
            for url in &config.urls {
                started.push(sink::Sink::start(config, url, &resolve, &runtime)?);
            }
        }
        Ok(EventBus::with_sinks(server, runtime, started))
    }

    fn with_sinks(server: &str, runtime: Runtime, sinks: Vec<sink::Sink>) -> EventBus {
        EventBus {
            inner: Arc::new(Inner {
                server: server.to_string(),
                incarnation: runtime.random_u64() & 0xffff_ffff,
                sequence: Mutex::new(0),
                sinks,
                runtime,
            }),
        }
    }

    /// Whether any sink is configured.
    pub fn is_active(&self) -> bool {
        !self.inner.sinks.is_empty()
    }

    /// Hands `event` to every sink that takes it; never waits.
    pub fn emit(&self, event: Event) {
        if self.inner.sinks.is_empty() {
            return;
        }
        let mut last = self
            .inner
            .sequence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *last += 1;
        let sequence = *last;
        let mut object = Map::new();
        object.insert("event".into(), json!(event.name));
        object.insert(
            "event_id".into(),
            json!(format!("{:08x}-{sequence}", self.inner.incarnation)),
        );
        let utc_ms = self.inner.runtime.wall_clock_ms();
        object.insert("utc_ms".into(), json!(utc_ms));
        object.insert("level".into(), json!(event.level.name()));
        object.insert("server".into(), json!(self.inner.server));
        if let Some(media) = &event.media {
            object.insert("media".into(), json!(media));
        }
        object.extend(event.fields);
        let encoded = Arc::new(Encoded {
            name: event.name,
            level: event.level,
            utc_ms,
            json: Value::Object(object.clone()).to_string(),
            object,
        });
        for sink in &self.inner.sinks {
            sink.offer(&encoded);
        }
        drop(last);
    }

    /// Each sink's counters, for the metrics.
    pub fn sink_stats(&self) -> Vec<sink::SinkStats> {
        self.inner.sinks.iter().map(sink::Sink::stats).collect()
    }

    /// Delivers what the sinks can within `grace` (the node stops), then stops them.
    pub async fn drain(&self, grace: std::time::Duration) {
        for sink in &self.inner.sinks {
            sink.close();
        }
        let deadline = self.inner.runtime.now() + grace;
        for sink in &self.inner.sinks {
            let left = deadline.saturating_duration_since(self.inner.runtime.now());
            sink.wait_drained(left).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads emitting at once still queue events in `event_id` order: a receiver may
    /// take a smaller id after a larger one as a replay, never as news.
    #[test]
    fn events_emitted_from_many_threads_reach_a_sink_in_id_order() {
        const THREADS: usize = 8;
        const EVENTS_PER_THREAD: usize = 500;
        let dir = std::env::temp_dir().join(format!(
            "flotilla-events-order-{}-{}",
            std::process::id(),
            Runtime::production().random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let config = EventSink {
            name: "file".into(),
            urls: vec![format!("jsonlog://{}", path.display())],
            ..EventSink::default()
        };
        let bus = EventBus::start("n1", Runtime::production(), &[config], |p| p.into()).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..EVENTS_PER_THREAD {
                        bus.emit(Event::new("probe", EventLevel::Info));
                    }
                });
            }
        });
        for sink in &bus.inner.sinks {
            sink.close();
        }
        let wanted = THREADS * EVENTS_PER_THREAD;
        let mut lines = String::new();
        for _ in 0..500 {
            lines = std::fs::read_to_string(&path).unwrap_or_default();
            if lines.lines().count() >= wanted {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let ids: Vec<u64> = lines
            .lines()
            .map(|line| {
                let event: Value = serde_json::from_str(line).unwrap();
                let id = event["event_id"].as_str().unwrap();
                id.split_once('-').unwrap().1.parse().unwrap()
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(ids.len(), wanted, "every event written");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    }
}
