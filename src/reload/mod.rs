//! Config reload without dropping viewers: SIGHUP, or `POST /flotilla/api/reload` with
//! edit_auth.
//!
//! A reload reads the node's config file again (with its `.conf.d` fragments), checks it
//! the way a start does, and refuses it whole — with every error and its line:col — when
//! it does not load: the running config stays. A config that loads is compared with the
//! running one ([`changes::ConfigChanges`]) and only the differences are applied:
//!
//! 1. New listeners are bound first; a taken port refuses the reload, nothing changed.
//! 2. Everything requests read from the config is swapped at once ([`crate::live::Live`]):
//!    templates, access rules and credentials, balancers, the running config itself.
//! 3. The plan of the actor tree is replaced (a new revision) and the streams that differ
//!    are stopped, restarted or started through the `streams` supervisor; the
//!    cluster_ingest coordinator takes the new plan at its next tick. A stream whose plan
//!    is equal is not touched: its ingest, segments and viewers go on.
//! 4. Balancer instances and peer links follow their lists; removed listeners stop
//!    accepting (their open connections finish), added ones start.
//!
//! Settings read once at start (the mesh key and port, TLS file paths, `geoip`, SRT and
//! RTSP listeners, `sources`, …) are reported as "restart required" and keep their
//! running values. Reloads run one at a time, on their own task: a request waits for its
//! turn, never on a media or actor mailbox.

mod apply;
pub mod changes;
pub mod origin;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use apply::{Prepared, Reloader, ondemand_streams};
pub use changes::ConfigChanges;
pub use origin::ConfigOrigin;

/// Reload requests waiting for the running one; more are refused as busy (a reload
/// re-reads the file, so one queued behind the running one sees every edit anyway).
pub const MAX_PENDING_RELOADS: usize = 4;

/// Why a reload did not apply. Nothing changed in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config does not load (the operator's to fix; retrying the same file
    /// fails the same way).
    #[error("the config was not reloaded, the running config stays:\n{0}")]
    Config(String),
    /// A new listener could not be bound (the environment's: a port in use; retry
    /// once it is free).
    #[error("the config was not reloaded: cannot listen on {address} ({purpose}): {source}")]
    Bind {
        address: std::net::SocketAddr,
        purpose: &'static str,
        source: std::io::Error,
    },
    /// The node was started from text, not a file: there is nothing to read again.
    #[error("this node runs a config given as text (no file to read again)")]
    NoFile,
    /// The node is stopping, or too many reloads are waiting.
    #[error("{0}")]
    Unavailable(&'static str),
}

impl ReloadError {
    /// The HTTP status that says whose fault it is.
    pub fn status(&self) -> u16 {
        match self {
            ReloadError::Config(_) | ReloadError::NoFile => 400,
            ReloadError::Bind { .. } => 409,
            ReloadError::Unavailable(_) => 503,
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// The plan revision now running (0 is the config the node started with).
    pub revision: u64,
    pub streams: changes::Keyed,
    pub templates: changes::Keyed,
    pub balancers: changes::Keyed,
    pub peers: changes::Keyed,
    pub listeners_opened: Vec<String>,
    pub listeners_closed: Vec<String>,
    /// Access settings (credentials, tokens, policies, limits) changed: they apply to
    /// new sessions and requests.
    pub access_changed: bool,
    /// Settings that changed in the file but keep their running value until a restart.
    pub restart_required: Vec<String>,
    /// Config warnings of the new file.
    pub warnings: Vec<String>,
}

/// The outcome a requester is told.
pub type ReloadOutcome = Result<ReloadReport, ReloadError>;

/// One reload asked for.
pub struct ReloadRequest {
    /// Who asked (`SIGHUP`, `api`), for the log.
    pub origin: &'static str,
    /// Where the outcome goes (dropped: nobody waits).
    pub reply: Option<oneshot::Sender<ReloadOutcome>>,
}

/// Asks the node's reload task for reloads. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    requests: mpsc::Sender<ReloadRequest>,
}

impl ReloadHandle {
    /// A handle and the queue its requests arrive on.
    pub fn channel() -> (ReloadHandle, mpsc::Receiver<ReloadRequest>) {
        let (requests, queue) = mpsc::channel(MAX_PENDING_RELOADS);
        (ReloadHandle { requests }, queue)
    }

    /// Asks for a reload and waits for its outcome.
    pub async fn reload(&self, origin: &'static str) -> ReloadOutcome {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .try_send(ReloadRequest {
                origin,
                reply: Some(reply),
            })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    ReloadError::Unavailable("too many reloads are waiting; try again")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    ReloadError::Unavailable("the node is stopping")
                }
            })?;
        outcome
            .await
            .unwrap_or(Err(ReloadError::Unavailable("the node is stopping")))
    }

    /// Asks for a reload without waiting (SIGHUP: the outcome is logged).
    pub fn request(&self, origin: &'static str) {
        if self
            .requests
            .try_send(ReloadRequest {
                origin,
                reply: None,
            })
            .is_err()
        {
            tracing::warn!(
                origin,
                "reload not queued: one is already waiting, or the node is stopping"
            );
        }
    }
}
