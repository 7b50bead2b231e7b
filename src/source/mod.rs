//! Restreaming other clusters: the `source` lines of an edge.
//!
//! `source HOST[:PORT][/PREFIX] { only …; except …; cluster_key …; }` makes the streams of
//! another flotilla cluster available on this node, on demand. The node is not a peer of
//! that cluster: it asks a node of it for the cluster's catalog (`ListStreams` on the
//! mesh, with the source's cluster key: `mesh::catalog` answers it) every fetch
//! interval, and the first viewer of a stream starts a relayed copy that subscribes to
//! the stream's owner in that cluster, as a relay within one cluster does
//! (`crate::relay`). The decisions (which streams, from which source, when to move) are
//! pure, in `flotilla_cluster::source::book`; this module is their IO: dialing, asking,
//! and the connections relays share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use flotilla_cluster::mesh::ExchangeFailure;
use flotilla_cluster::source::SourceIo;
use flotilla_cluster::source::book::{Catalog, SourceBook, SourceNode, SourceOwner, SourceRule};
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::BoxFuture;

use crate::config::Config;
use crate::config::identity::node_key;
use crate::config::model::Source;
use crate::error::{Classified, Fault};
use crate::mesh::auth::{AuthError, ClusterIdentity};
use crate::mesh::connect::ConnectError;
use crate::mesh::exchange::ExchangeError;
use crate::mesh::service::{MeshService, PeerTarget};

#[cfg(test)]
mod tests;

/// How long one node of a source has to answer an ask (connecting included) before the
/// next of its nodes is tried.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A source's name: its line's address as written, with its prefix (`HOST:PORT[/PREFIX]`,
/// the port defaulted): the name of its link and in the API.
pub fn source_name(source: &Source) -> String {
    let address = node_key(&source.address);
    match &source.prefix {
        Some(prefix) => format!("{address}/{}", prefix.trim_matches('/')),
        None => address,
    }
}

/// The rule of `source`: a `/PREFIX` or `prefix`, `only` (a bare `only;` takes every
/// stream, as no `only` does: every stream of a source is on demand anyway), `except`.
pub fn rule_of(source: &Source) -> SourceRule {
    SourceRule {
        prefix: source.prefix.clone(),
        only: source.only.clone().unwrap_or_default(),
        except: source.except.clone(),
    }
}

/// Why asking a source, or subscribing at one of its nodes, failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The address does not resolve (transport: DNS may answer later).
    #[error("cannot resolve {0}")]
    Unresolved(String),
    /// No connection to the node.
    #[error("{node}: {error}")]
    Connect { node: String, error: ConnectError },
    /// The ask failed on the connection.
    #[error("{node}: {error}")]
    Exchange { node: String, error: ExchangeError },
    /// The node did not answer within [`ASK_TIMEOUT`] (transport).
    #[error("{0}: no answer within {ASK_TIMEOUT:?}")]
    Timeout(String),
    /// The source is not in this node's config (local: a link outlived its line).
    #[error("no source `{0}` is configured")]
    Unknown(String),
}

impl Classified for SourceError {
    fn fault(&self) -> Fault {
        match self {
            SourceError::Unresolved(_) | SourceError::Timeout(_) => Fault::Transport,
            SourceError::Connect { error, .. } => error.fault(),
            SourceError::Exchange { error, .. } => error.fault(),
            SourceError::Unknown(_) => Fault::Local,
        }
    }
}

struct Inner {
    mesh: MeshService,
    runtime: Runtime,
    book: RwLock<SourceBook>,
    /// Each source's identity (its `cluster_key`, else this node's), by source name.
    identities: HashMap<String, ClusterIdentity>,
    /// Open connections, by (source name, address dialed): asks and relays share them.
    connections: Mutex<HashMap<(String, String), quinn::Connection>>,
    fetch_interval: Duration,
}

/// This node's sources: the book and the connections to their nodes. Cheap to clone.
#[derive(Clone)]
pub struct NodeSources {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NodeSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSources")
    }
}

impl NodeSources {
    /// The sources of `config` on `mesh`; `None` when it has none. `own` is this node's
    /// cluster identity, a source's identity when it names no key of its own.
    pub fn new(
        config: &Config,
        mesh: MeshService,
        own: &ClusterIdentity,
        runtime: Runtime,
    ) -> Result<Option<NodeSources>, AuthError> {
        if config.sources.is_empty() {
            return Ok(None);
        }
        let mut identities = HashMap::new();
        let mut entries = Vec::new();
        for source in &config.sources {
            let name = source_name(source);
            let identity = match &source.cluster_key {
                Some(key) => ClusterIdentity::derive(&key.0)?,
                None => own.clone(),
            };
            identities.insert(name.clone(), identity);
            entries.push((name, node_key(&source.address), rule_of(source)));
        }
        Ok(Some(NodeSources {
            inner: Arc::new(Inner {
                mesh,
                runtime,
                book: RwLock::new(SourceBook::new(entries, crate::defaults::STALE_TIMEOUT_MS)),
                identities,
                connections: Mutex::default(),
                fetch_interval: Duration::from_millis(crate::defaults::FETCH_TIMEOUT_MS),
            }),
        }))
    }

    fn now_ms(&self) -> u64 {
        self.inner.runtime.wall_clock_ms()
    }

    /// The book as it is now (for the API).
    pub fn book(&self) -> SourceBook {
        self.inner
            .book
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where `stream` can be taken from now, best first.
    pub fn locate(&self, stream: &str) -> Vec<SourceOwner> {
        let now_ms = self.now_ms();
        let book = self.inner.book.read().unwrap_or_else(|p| p.into_inner());
        book.locate(stream, now_ms)
    }

    /// Whether a relay following `node` for `stream` should stay on it.
    pub fn still_has(&self, stream: &str, node: &str) -> bool {
        let now_ms = self.now_ms();
        let book = self.inner.book.read().unwrap_or_else(|p| p.into_inner());
        book.still_has(stream, node, now_ms)
    }

    /// The stream some source offers that a request for `path` is about.
    pub fn located_stream(&self, path: &str) -> Option<String> {
        let now_ms = self.now_ms();
        let book = self.inner.book.read().unwrap_or_else(|p| p.into_inner());
        book.located_stream(path, now_ms).map(str::to_string)
    }

    /// The name of source number `index` (config order).
    fn name_of(&self, index: usize) -> Option<String> {
        let book = self.inner.book.read().unwrap_or_else(|p| p.into_inner());
        book.sources().get(index).map(|s| s.name.clone())
    }

    /// A connection to the node at `dial` of source `source`: an open one, or a new one
    /// made with the source's key.
    async fn connection(&self, source: &str, dial: &str) -> Result<quinn::Connection, SourceError> {
        let key = (source.to_string(), dial.to_string());
        let open = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|c| c.close_reason().is_none())
            .cloned();
        if let Some(connection) = open {
            return Ok(connection);
        }
        let identity = self
            .inner
            .identities
            .get(source)
            .cloned()
            .ok_or_else(|| SourceError::Unknown(source.to_string()))?;
        let address = self
            .inner
            .mesh
            .resolve(dial)
            .ok_or_else(|| SourceError::Unresolved(dial.to_string()))?;
        let target = PeerTarget {
            key: dial.to_string(),
            address,
            identity,
        };
        let connection =
            self.inner
                .mesh
                .connect(&target)
                .await
                .map_err(|error| SourceError::Connect {
                    node: dial.to_string(),
                    error,
                })?;
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, connection.clone());
        Ok(connection)
    }

    /// Forgets the connection to `dial` of `source` (it failed an ask).
    fn drop_connection(&self, source: &str, dial: &str) {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(source.to_string(), dial.to_string()));
    }

    /// A connection to `owner` for a relay subscription.
    pub async fn owner_connection(
        &self,
        owner: &SourceOwner,
    ) -> Result<quinn::Connection, SourceError> {
        let source = self
            .name_of(owner.source)
            .ok_or_else(|| SourceError::Unknown(format!("#{}", owner.source)))?;
        self.connection(&source, &owner.dial).await
    }

    /// Asks the node at `dial` of `source` for its catalog.
    async fn ask(&self, source: &str, dial: &str) -> Result<Catalog, SourceError> {
        let asked = async {
            let connection = self.connection(source, dial).await?;
            self.inner
                .mesh
                .list_streams(&connection)
                .await
                .map_err(|error| SourceError::Exchange {
                    node: dial.to_string(),
                    error,
                })
        };
        let (nodes, streams) = tokio::time::timeout(ASK_TIMEOUT, asked)
            .await
            .map_err(|_| SourceError::Timeout(dial.to_string()))??;
        Ok(Catalog {
            nodes: nodes
                .into_iter()
                .map(|node| SourceNode {
                    id: node.id,
                    dial: node.mesh,
                })
                .collect(),
            streams: streams
                .into_iter()
                .map(|stream| (stream.name, stream.owners))
                .collect(),
        })
    }

    /// Asks `source` through each of its nodes in turn until one answers.
    async fn fetch_catalog(&self, source: &str) -> Result<usize, SourceError> {
        let order = {
            let book = self.inner.book.read().unwrap_or_else(|p| p.into_inner());
            book.ask_order(source)
        };
        let mut last = SourceError::Unknown(source.to_string());
        for dial in order {
            match self.ask(source, &dial).await {
                Ok(catalog) => {
                    let now_ms = self.now_ms();
                    let mut book = self.inner.book.write().unwrap_or_else(|p| p.into_inner());
                    return Ok(book.answered(source, &dial, catalog, now_ms));
                }
                Err(error) => {
                    tracing::debug!(%source, node = %dial, %error, "source node did not answer");
                    self.drop_connection(source, &dial);
                    last = error;
                }
            }
        }
        let mut book = self.inner.book.write().unwrap_or_else(|p| p.into_inner());
        book.failed(source, last.to_string());
        Err(last)
    }
}

impl SourceIo for NodeSources {
    fn fetch(&self, source: &str) -> BoxFuture<Result<usize, ExchangeFailure>> {
        let sources = self.clone();
        let source = source.to_string();
        Box::pin(async move {
            let was_answering = sources.answering(&source);
            let result = sources.fetch_catalog(&source).await;
            match (&result, was_answering) {
                (Ok(streams), false) => {
                    tracing::info!(%source, streams, "source answers: its streams are available here")
                }
                (Err(error), true) => {
                    tracing::warn!(%source, %error, fault = %error.fault(), "source stopped answering; its streams are taken from other sources while it is silent")
                }
                _ => {}
            }
            Ok(result?)
        })
    }

    fn fetch_interval(&self, _source: &str) -> Duration {
        self.inner.fetch_interval
    }
}

impl NodeSources {
    /// Whether `source`'s last ask was answered.
    fn answering(&self, source: &str) -> bool {
        let book = self.inner.book.read().unwrap_or_else(|p| p.into_inner());
        book.sources()
            .iter()
            .any(|s| s.name == source && s.fetched_ms.is_some() && s.last_error.is_none())
    }
}
