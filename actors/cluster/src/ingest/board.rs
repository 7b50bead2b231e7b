//! The ingest board: what the coordinator last decided, shared with the rest of the node
//! without asking the coordinator anything. The mesh advertises from it, the HTTP API
//! shows it, the `streams` supervisor reads which cluster_ingest streams run here from
//! it when it (re)starts, and viewers' requests check epochs against it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::book::Row;
use crate::mesh::view::IngestRole;

/// This node's part in one cluster_ingest stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LocalPart {
    /// Standby, capturing or failed.
    pub role: IngestRole,
    /// The capture epoch (when capturing), else the highest one seen.
    pub epoch: u64,
}

/// What the board holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardState {
    /// This node's part per configured cluster_ingest stream.
    pub local: BTreeMap<String, LocalPart>,
    /// The generation of `local`: the board raises it whenever a part changes (a
    /// publish with different parts, a `set_local` that changes one), and keeps it
    /// while the parts stand (most steps: another node's capture moved). A reader that
    /// built something from the parts (the mesh advertisement) compares generations.
    /// Whatever a publisher puts here is replaced.
    pub local_generation: u64,
    /// The ownership table, in stream name order.
    pub rows: Vec<Row>,
    /// Minority restraint holds this node back.
    pub restrained: bool,
    /// Start-up settle done.
    pub settled: bool,
}

/// The shared board. Cheap to clone.
///
/// The state is published whole and read as a shared snapshot: a reader (the HTTP API,
/// the simulator's checker several times a second) takes a reference, never a copy of
/// every row, and a rare in-place update copies only while a snapshot is held.
#[derive(Debug, Clone, Default)]
pub struct IngestBoard {
    state: Arc<RwLock<Arc<BoardState>>>,
}

impl IngestBoard {
    /// The whole board as last published.
    pub fn snapshot(&self) -> Arc<BoardState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// This node's part in `stream`, if it is a cluster_ingest stream configured here.
    pub fn local(&self, stream: &str) -> Option<LocalPart> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .local
            .get(stream)
            .copied()
    }

    /// This node's part in every configured cluster_ingest stream.
    pub fn local_parts(&self) -> BTreeMap<String, LocalPart> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .local
            .clone()
    }

    /// Whether this node captures `stream`.
    pub fn captures(&self, stream: &str) -> bool {
        self.local(stream)
            .is_some_and(|part| part.role == IngestRole::Capturing)
    }

    /// The table row of `stream`.
    pub fn row(&self, stream: &str) -> Option<Row> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .rows
            .iter()
            .find(|row| row.stream == stream)
            .cloned()
    }

    /// Replaces the board (the coordinator, after each step), raising the parts'
    /// generation when they differ from the ones published before.
    pub fn publish(&self, mut state: BoardState) {
        let mut current = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.local_generation = if state.local == current.local {
            current.local_generation
        } else {
            current.local_generation + 1
        };
        *current = Arc::new(state);
    }

    /// Updates this node's part in one stream at once (a start or a stop being applied),
    /// so that a restarting `streams` supervisor never sees a stale answer.
    pub fn set_local(&self, stream: &str, part: LocalPart) {
        let mut current = self.state.write().unwrap_or_else(|p| p.into_inner());
        if current.local.get(stream) == Some(&part) {
            return;
        }
        let state = Arc::make_mut(&mut current);
        state.local.insert(stream.to_string(), part);
        state.local_generation += 1;
    }
}
