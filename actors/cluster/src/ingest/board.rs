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
    /// This node's part per configured cluster_ingest stream. Shared: a step that leaves
    /// every part as it was (most steps: another node's capture moved) publishes the
    /// very same map, so a reader that built something from it (the mesh advertisement)
    /// knows it unchanged by its address.
    pub local: Arc<BTreeMap<String, LocalPart>>,
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
            .as_ref()
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

    /// Replaces the board (the coordinator, after each step).
    pub fn publish(&self, state: BoardState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }

    /// Updates this node's part in one stream at once (a start or a stop being applied),
    /// so that a restarting `streams` supervisor never sees a stale answer.
    pub fn set_local(&self, stream: &str, part: LocalPart) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        Arc::make_mut(&mut Arc::make_mut(&mut state).local).insert(stream.to_string(), part);
    }
}
