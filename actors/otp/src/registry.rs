//! The per-node actor registry: every live actor of one node, by path.
//!
//! ractor's own registry and process groups are process-wide, which is wrong for a
//! simulation that runs several nodes in one process, so each node owns one of these.
//! It is what the introspection API and the remote shell read: path, kind, parent,
//! status, start time, restarts, messages handled, mailbox depth (counted by our own
//! send wrapper, since ractor does not expose it), last failure and a one-line summary.
//!
//! An entry lives as long as its place in the tree: it survives restarts of the actor
//! (the restart count is on it) and is removed when the supervisor removes the child.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::ActorCell;
use serde::Serialize;

/// Longest path accepted (segments are stream names, which are bounded; this bounds the
/// sum).
pub const MAX_PATH_BYTES: usize = 1024;

/// Where an actor sits in its node's tree: `node/streams/cam01`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ActorPath(String);

/// Paths order, compare and hash as their text (the one field), so a map keyed by paths
/// is searched by `&str`.
impl std::borrow::Borrow<str> for ActorPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl ActorPath {
    /// The root of a node's tree.
    pub fn root() -> ActorPath {
        ActorPath("node".into())
    }

    /// A child path. Segment names may contain `/` (stream names do); they are kept as is,
    /// so a lookup by a full path still works.
    pub fn child(&self, segment: &str) -> ActorPath {
        ActorPath(format!("{}/{segment}", self.0))
    }

    /// Parses an operator-given path (API, shell); `None` when it is not a node path.
    pub fn parse(text: &str) -> Option<ActorPath> {
        let text = text.trim_matches('/');
        let valid = (text == "node" || text.starts_with("node/"))
            && text.len() <= MAX_PATH_BYTES
            && !text.split('/').any(str::is_empty);
        valid.then(|| ActorPath(text.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `other` or below it.
    pub fn is_within(&self, other: &ActorPath) -> bool {
        self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle of an entry as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorStatus {
    /// Being started (or restarted) by its supervisor.
    Starting,
    /// Running and handling messages.
    Running,
    /// Failed; the supervisor will start it again after a backoff delay.
    Restarting,
    /// Being shut down.
    Stopping,
}

/// Events a traced actor reports, in order (the shell's `trace PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A new incarnation runs.
    Started,
    /// The incarnation failed.
    Failed {
        /// Why, one line.
        reason: String,
    },
    /// Its supervisor changed its status.
    Status {
        /// The new status.
        status: ActorStatus,
    },
    /// It handled a message.
    Handled {
        /// Messages handled so far (all incarnations).
        handled: u64,
    },
    /// Its one-line summary changed.
    Summary {
        /// The new summary.
        summary: String,
    },
}

/// Events buffered per tracer; a tracer that falls further behind is told how many it
/// missed instead of slowing the actor.
pub const TRACE_BUFFER_EVENTS: usize = 256;

/// Sends a failure into an actor, so that its supervisor acts (the kill API).
pub type FailureInjector = Arc<dyn Fn(String) -> bool + Send + Sync>;

/// Reports the bytes an actor holds now (its buffers: a stream's segment window and GOP,
/// a peer link's copy of the peer's state). Read when someone asks (`top memory`), never
/// on the message path. Rust has no per-process heap like the BEAM: this is what the
/// actor owns on purpose, not every allocation made on its behalf.
pub type MemoryProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Writes an actor's one-line summary when someone asks (the shell, the tree API),
/// instead of the actor refreshing it after every message: for actors whose state
/// changes without messages (a viewer session's bytes), so they need no timer to keep
/// their line current. Read with the entry unlocked.
pub type SummaryProbe = Arc<dyn Fn() -> String + Send + Sync>;

/// Counters updated on the message path without locks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages sent through our handles (the enqueue side of the mailbox depth).
    pub enqueued: AtomicU64,
    /// Messages the actor finished handling.
    pub handled: AtomicU64,
}

impl Counters {
    /// Messages waiting in the mailbox (or being handled).
    pub fn mailbox_depth(&self) -> u64 {
        let handled = self.handled.load(Ordering::Relaxed);
        self.enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(handled)
    }
}

/// One actor's registry entry.
pub struct Entry {
    /// Where it is.
    pub path: ActorPath,
    /// What it is: `supervisor`, `stream`, `peer_link`, …
    pub kind: &'static str,
    /// Its supervisor's path (`None` for the root).
    pub parent: Option<ActorPath>,
    /// Message counters, shared with the actor's handles.
    pub counters: Arc<Counters>,
    /// This entry's number in its registry, unique there: an actor removed and
    /// registered again at the same path is another entry with another number, so a
    /// reader that remembered one can tell.
    pub registration: u64,
    restarts: AtomicU64,
    started_at_ms: AtomicU64,
    /// Bumped by a supervisor whenever its set of children changes (one added or
    /// removed), so a reader that compares sets can skip asking while it stands.
    children_version: AtomicU64,
    state: Mutex<EntryState>,
    /// Someone traces this actor: events are sent (a relaxed load on the message path
    /// otherwise).
    traced: std::sync::atomic::AtomicBool,
}

struct EntryState {
    status: ActorStatus,
    cell: Option<ActorCell>,
    last_failure: Option<String>,
    summary: String,
    injector: Option<FailureInjector>,
    memory: Option<MemoryProbe>,
    /// Writes the summary on demand; `summary` is unused while one is set.
    summary_probe: Option<SummaryProbe>,
    /// A typed handle to the actor (`Handle<M>`), for lookups by path.
    handle: Option<Arc<dyn Any + Send + Sync>>,
    /// The tracers' channel, created by the first one.
    tracers: Option<tokio::sync::broadcast::Sender<TraceEvent>>,
}

/// Longest summary or failure reason kept: the shell shows one line of each.
pub const MAX_SUMMARY_CHARS: usize = 200;

fn one_line(text: &str) -> String {
    let line: String = text
        .split('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .take(MAX_SUMMARY_CHARS)
        .collect();
    line
}

impl Entry {
    fn state(&self) -> std::sync::MutexGuard<'_, EntryState> {
        // Entries hold plain data; a panic while holding the lock leaves it consistent.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Sends `event` to the tracers, if any (with the state locked by the caller).
    fn emit(&self, state: &mut EntryState, event: impl FnOnce() -> TraceEvent) {
        if !self.traced.load(Ordering::Relaxed) {
            return;
        }
        if let Some(tracers) = &state.tracers
            && tracers.send(event()).is_err()
        {
            // The last tracer left.
            state.tracers = None;
            self.traced.store(false, Ordering::Relaxed);
        }
    }

    /// Follows this actor's events from now on.
    pub fn trace(&self) -> tokio::sync::broadcast::Receiver<TraceEvent> {
        let mut state = self.state();
        let receiver = match &state.tracers {
            Some(tracers) => tracers.subscribe(),
            None => {
                let (tracers, receiver) = tokio::sync::broadcast::channel(TRACE_BUFFER_EVENTS);
                state.tracers = Some(tracers);
                receiver
            }
        };
        self.traced.store(true, Ordering::Relaxed);
        receiver
    }

    /// Records a handled message (the message path: cheap unless traced).
    pub fn mark_handled(&self) {
        let handled = self.counters.handled.fetch_add(1, Ordering::Relaxed) + 1;
        if self.traced.load(Ordering::Relaxed) {
            let mut state = self.state();
            self.emit(&mut state, || TraceEvent::Handled { handled });
        }
    }

    /// Records a (re)start: the cell, the time and the status.
    pub fn mark_started(&self, cell: ActorCell, now_ms: u64) {
        self.started_at_ms.store(now_ms, Ordering::Relaxed);
        let mut state = self.state();
        state.cell = Some(cell);
        state.status = ActorStatus::Running;
        self.emit(&mut state, || TraceEvent::Started);
    }

    /// Records a failure reason (kept until the next failure).
    pub fn mark_failed(&self, reason: &str) {
        let mut state = self.state();
        state.last_failure = Some(one_line(reason));
        state.cell = None;
        self.emit(&mut state, || TraceEvent::Failed {
            reason: one_line(reason),
        });
    }

    /// Counts one restart by the supervisor.
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the lifecycle status.
    pub fn set_status(&self, status: ActorStatus) {
        let mut state = self.state();
        state.status = status;
        self.emit(&mut state, || TraceEvent::Status { status });
    }

    /// Sets the one-line summary of the actor's state.
    pub fn set_summary(&self, summary: &str) {
        let mut state = self.state();
        if state.summary != summary {
            state.summary = one_line(summary);
            let line = state.summary.clone();
            self.emit(&mut state, || TraceEvent::Summary { summary: line });
        }
    }

    /// Installs how to inject a failure into the current incarnation.
    pub fn set_injector(&self, injector: FailureInjector) {
        self.state().injector = Some(injector);
    }

    /// Installs (or, with `None`, removes) how the current incarnation writes its summary.
    pub fn set_summary_probe(&self, probe: Option<SummaryProbe>) {
        self.state().summary_probe = probe;
    }

    /// Installs (or, with `None`, removes) how the current incarnation reports its memory.
    pub fn set_memory_probe(&self, probe: Option<MemoryProbe>) {
        self.state().memory = probe;
    }

    /// Installs the typed handle of the current incarnation.
    pub fn set_handle(&self, handle: Arc<dyn Any + Send + Sync>) {
        self.state().handle = Some(handle);
    }

    /// The typed handle, if the actor is of that message type.
    pub fn handle<H: Clone + 'static>(&self) -> Option<H> {
        self.state().handle.as_ref()?.downcast_ref::<H>().cloned()
    }

    /// The current ractor cell, if running.
    pub fn cell(&self) -> Option<ActorCell> {
        self.state().cell.clone()
    }

    /// When the current (or last) incarnation started, Unix ms (0: never).
    pub fn started_at_ms(&self) -> u64 {
        self.started_at_ms.load(Ordering::Relaxed)
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Notes that this supervisor's set of children changed.
    pub fn bump_children_version(&self) {
        self.children_version.fetch_add(1, Ordering::Release);
    }

    /// How many times this supervisor's set of children changed (any incarnation): the
    /// set stands while this, [`Entry::restarts`] and [`Entry::started_at_ms`] do.
    pub fn children_version(&self) -> u64 {
        self.children_version.load(Ordering::Acquire)
    }

    /// Injects a failure (`reason`) into the running actor. False when it is not running.
    pub fn inject_failure(&self, reason: String) -> bool {
        let injector = self.state().injector.clone();
        injector.is_some_and(|inject| inject(reason))
    }

    /// A serializable snapshot.
    pub fn info(&self, now_ms: u64) -> ActorInfo {
        let state = self.state();
        let started_at_ms = self.started_at_ms.load(Ordering::Relaxed);
        let probe = state.memory.clone();
        let summary_probe = state.summary_probe.clone();
        let mut info = ActorInfo {
            path: self.path.clone(),
            kind: self.kind,
            parent: self.parent.clone(),
            status: state.status,
            started_at_ms,
            uptime_ms: now_ms.saturating_sub(started_at_ms),
            restarts: self.restarts(),
            messages_handled: self.counters.handled.load(Ordering::Relaxed),
            mailbox_depth: self.counters.mailbox_depth(),
            last_failure: state.last_failure.clone(),
            summary: state.summary.clone(),
            children: Vec::new(),
            memory_bytes: None,
        };
        // The probe reads the actor's buffers: never with this entry locked.
        drop(state);
        info.memory_bytes = probe.map(|probe| probe());
        if let Some(summary) = summary_probe {
            info.summary = one_line(&summary());
        }
        info
    }
}

/// What the introspection API shows of one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorInfo {
    /// Where it is.
    pub path: ActorPath,
    /// What it is.
    pub kind: &'static str,
    /// Its supervisor.
    pub parent: Option<ActorPath>,
    /// Lifecycle status.
    pub status: ActorStatus,
    /// Unix time (ms) of the current incarnation's start.
    pub started_at_ms: u64,
    /// How long the current incarnation has run.
    pub uptime_ms: u64,
    /// Restarts by its supervisor.
    pub restarts: u64,
    /// Messages handled (all incarnations).
    pub messages_handled: u64,
    /// Messages waiting.
    pub mailbox_depth: u64,
    /// Bytes the actor holds, for actors that report it (see [`MemoryProbe`]).
    pub memory_bytes: Option<u64>,
    /// The last failure reason, one line.
    pub last_failure: Option<String>,
    /// One line about its state.
    pub summary: String,
    /// Its children, when shown as a tree.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ActorInfo>,
}

/// Tells whether a node's registry has been freed: a test that the node's owner let go
/// of everything and no reference cycle kept the actor tree alive.
#[derive(Debug, Clone)]
pub struct RegistryRelease(std::sync::Weak<RwLock<BTreeMap<ActorPath, Arc<Entry>>>>);

impl RegistryRelease {
    /// True once nothing holds the registry any more.
    pub fn released(&self) -> bool {
        self.0.strong_count() == 0
    }
}

/// The registry of one node. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Registry {
    entries: Arc<RwLock<BTreeMap<ActorPath, Arc<Entry>>>>,
    /// Entries created so far (numbers them: [`Entry::registration`]).
    registrations: Arc<AtomicU64>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Registry({} actors)", self.len())
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ActorPath, Arc<Entry>>> {
        self.entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ActorPath, Arc<Entry>>> {
        self.entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The entry at `path`, created (status `Starting`) if absent.
    pub fn ensure(
        &self,
        path: &ActorPath,
        kind: &'static str,
        parent: Option<&ActorPath>,
    ) -> Arc<Entry> {
        if let Some(entry) = self.read().get(path) {
            return entry.clone();
        }
        self.write()
            .entry(path.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    path: path.clone(),
                    kind,
                    parent: parent.cloned(),
                    counters: Arc::default(),
                    registration: self.registrations.fetch_add(1, Ordering::Relaxed) + 1,
                    restarts: AtomicU64::new(0),
                    started_at_ms: AtomicU64::new(0),
                    children_version: AtomicU64::new(0),
                    state: Mutex::new(EntryState {
                        status: ActorStatus::Starting,
                        cell: None,
                        last_failure: None,
                        summary: String::new(),
                        injector: None,
                        memory: None,
                        summary_probe: None,
                        handle: None,
                        tracers: None,
                    }),
                    traced: std::sync::atomic::AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// The entry at `path`.
    pub fn get(&self, path: &ActorPath) -> Option<Arc<Entry>> {
        self.get_text(path.as_str())
    }

    /// The entry at `path` given as text (a caller looking many paths up reuses one
    /// buffer instead of building an [`ActorPath`] for each).
    pub fn get_text(&self, path: &str) -> Option<Arc<Entry>> {
        self.read().get(path).cloned()
    }

    /// Removes `path` and everything below it. Descendants sort in one contiguous range
    /// (`path/` up to `path0`, `0` being the byte after `/`), so this costs O(k log n)
    /// for k removed entries, not a scan of the node.
    pub fn remove_subtree(&self, path: &ActorPath) {
        let mut entries = self.write();
        entries.remove(path);
        let start = ActorPath(format!("{}/", path.0));
        let end = ActorPath(format!("{}0", path.0));
        let below: Vec<ActorPath> = entries
            .range(start..end)
            .map(|(key, _)| key.clone())
            .collect();
        for key in below {
            entries.remove(&key);
        }
    }

    /// Forgets every actor (the node is gone): see [`crate::node::NodeTeardown`]. The
    /// entries are dropped after the lock is released, since dropping a handle or probe
    /// may run code that reads the registry.
    pub fn clear(&self) {
        let entries = std::mem::take(&mut *self.write());
        drop(entries);
    }

    /// A watch on whether this registry gets freed.
    pub fn release_watch(&self) -> RegistryRelease {
        RegistryRelease(Arc::downgrade(&self.entries))
    }

    /// Number of registered actors.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no actor is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Snapshots of every actor, in path order.
    pub fn list(&self, now_ms: u64) -> Vec<ActorInfo> {
        let entries: Vec<Arc<Entry>> = self.read().values().cloned().collect();
        entries.iter().map(|entry| entry.info(now_ms)).collect()
    }

    /// The subtree rooted at `root` (the whole tree for `node`), children nested.
    pub fn tree(&self, root: &ActorPath, now_ms: u64) -> Option<ActorInfo> {
        let mut by_parent: BTreeMap<Option<ActorPath>, Vec<ActorInfo>> = BTreeMap::new();
        let mut top = None;
        for info in self.list(now_ms) {
            if !info.path.is_within(root) {
                continue;
            }
            if &info.path == root {
                top = Some(info);
            } else {
                by_parent.entry(info.parent.clone()).or_default().push(info);
            }
        }
        fn attach(
            node: &mut ActorInfo,
            by_parent: &mut BTreeMap<Option<ActorPath>, Vec<ActorInfo>>,
        ) {
            let mut children = by_parent
                .remove(&Some(node.path.clone()))
                .unwrap_or_default();
            for child in &mut children {
                attach(child, by_parent);
            }
            node.children = children;
        }
        let mut top = top?;
        attach(&mut top, &mut by_parent);
        Some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_and_parse() {
        let streams = ActorPath::root().child("streams");
        let cam = streams.child("live/cam01");
        assert_eq!(cam.as_str(), "node/streams/live/cam01");
        assert!(cam.is_within(&streams));
        assert!(!ActorPath::root().child("streamsx").is_within(&streams));
        assert_eq!(ActorPath::parse("/node/streams/"), Some(streams));
        assert_eq!(ActorPath::parse("other/x"), None);
        assert_eq!(ActorPath::parse("node//x"), None);
    }

    #[test]
    fn tree_nests_children_under_parents() {
        let registry = Registry::default();
        let root = ActorPath::root();
        let streams = root.child("streams");
        registry.ensure(&root, "supervisor", None);
        registry.ensure(&streams, "supervisor", Some(&root));
        registry.ensure(&streams.child("a"), "stream", Some(&streams));
        registry.ensure(&root.child("mesh"), "supervisor", Some(&root));
        let tree = registry.tree(&root, 0).unwrap();
        let names: Vec<&str> = tree.children.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(names, vec!["node/mesh", "node/streams"]);
        assert_eq!(tree.children[1].children[0].path.as_str(), "node/streams/a");
        registry.ensure(&root.child("streams-x"), "supervisor", Some(&root));
        registry.remove_subtree(&streams);
        let left: Vec<String> = registry
            .list(0)
            .iter()
            .map(|i| i.path.to_string())
            .collect();
        assert_eq!(left, vec!["node", "node/mesh", "node/streams-x"]);
    }

    /// A probed summary is written when asked, so it is current without messages.
    #[test]
    fn a_summary_probe_answers_for_the_actor_when_asked() {
        let registry = Registry::default();
        let path = ActorPath::root().child("session");
        let entry = registry.ensure(&path, "session", None);
        entry.set_summary("stale");
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let read = bytes.clone();
        entry.set_summary_probe(Some(Arc::new(move || {
            format!("bytes {}\nsecond line", read.load(Ordering::Relaxed))
        })));
        assert_eq!(entry.info(0).summary, "bytes 1");
        bytes.store(42, Ordering::Relaxed);
        assert_eq!(entry.info(0).summary, "bytes 42");
        entry.set_summary_probe(None);
        assert_eq!(entry.info(0).summary, "stale");
    }

    #[test]
    fn mailbox_depth_never_underflows() {
        let counters = Counters::default();
        counters.handled.fetch_add(3, Ordering::Relaxed);
        assert_eq!(counters.mailbox_depth(), 0);
        counters.enqueued.fetch_add(5, Ordering::Relaxed);
        assert_eq!(counters.mailbox_depth(), 2);
    }
}
