//! A source link: asks one source for its catalog every fetch interval.
//!
//! Like a peer link it is control plane only: the node's [`SourceIo`] dials, asks and
//! records the answer (or the failure) in the source book. A source that does not answer
//! is a state of the world, shown in the book and the link's summary, not an actor
//! failure: the link keeps its rhythm and asks again at the next tick.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorProcessingErr;

use flotilla_otp::supervisor::BoxFuture;
use flotilla_otp::worker::{Handle, Worker};

use crate::mesh::ExchangeFailure;

/// The node's side of source links.
pub trait SourceIo: Send + Sync + 'static {
    /// Asks source `source` for its catalog (trying its nodes in the book's order) and
    /// records the outcome in the book; returns how many of its streams are restreamed.
    fn fetch(&self, source: &str) -> BoxFuture<Result<usize, ExchangeFailure>>;
    /// How often to ask.
    fn fetch_interval(&self, source: &str) -> Duration;
}

/// Source io of a node without sources: every ask fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSources;

impl SourceIo for NoSources {
    fn fetch(&self, _source: &str) -> BoxFuture<Result<usize, ExchangeFailure>> {
        Box::pin(async { Err(crate::mesh::MeshOff.into()) })
    }
    fn fetch_interval(&self, _source: &str) -> Duration {
        Duration::from_secs(3)
    }
}

/// The source link behaviour.
#[derive(Clone)]
pub struct SourceLink {
    /// The node's side.
    pub io: Arc<dyn SourceIo>,
}

/// What a source link knows.
#[derive(Debug)]
pub struct SourceLinkState {
    source: String,
    answers: u64,
    streams: usize,
    failures_in_a_row: u64,
    last_error: Option<String>,
}

/// Messages to a source link.
#[derive(Debug)]
pub enum SourceLinkMsg {
    /// Time to ask.
    Tick,
}

impl Worker for SourceLink {
    type Msg = SourceLinkMsg;
    type State = SourceLinkState;
    type Args = String;

    fn kind(&self) -> &'static str {
        "source_link"
    }

    async fn init(
        &self,
        me: &Handle<SourceLinkMsg>,
        source: String,
    ) -> Result<SourceLinkState, ActorProcessingErr> {
        // The first ask right away: a starting edge offers its sources' streams at once.
        // Each next one is scheduled when an ask ends, so a slow source (every node tried
        // in turn) never piles asks up in the mailbox.
        let _ = me.send(SourceLinkMsg::Tick);
        Ok(SourceLinkState {
            source,
            answers: 0,
            streams: 0,
            failures_in_a_row: 0,
            last_error: None,
        })
    }

    async fn handle(
        &self,
        me: &Handle<SourceLinkMsg>,
        message: SourceLinkMsg,
        state: &mut SourceLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SourceLinkMsg::Tick => match self.io.fetch(&state.source).await {
                Ok(streams) => {
                    state.answers += 1;
                    state.streams = streams;
                    state.failures_in_a_row = 0;
                    state.last_error = None;
                }
                Err(error) => {
                    state.failures_in_a_row += 1;
                    state.last_error = Some(error.to_string());
                }
            },
        }
        me.send_after(self.io.fetch_interval(&state.source), || {
            SourceLinkMsg::Tick
        });
        Ok(())
    }

    fn summary(&self, state: &SourceLinkState) -> String {
        match &state.last_error {
            None => format!(
                "{}: {} streams restreamed, {} catalogs",
                state.source, state.streams, state.answers
            ),
            Some(error) => format!(
                "{}: {} failed in a row: {error}",
                state.source, state.failures_in_a_row
            ),
        }
    }
}
