//! Where a relayed stream comes from: the node that has it, found in the cluster view and
//! reached on the mesh connection this node already keeps to it, or else a node of
//! another cluster this node restreams (`source`), found in the source book and reached
//! with that cluster's key.

use futures_util::future::BoxFuture;

use super::RelayError;
use super::transport::{ReadError, read_frame};
use crate::mesh::exchange;
use crate::mesh::links::MeshLinks;
use crate::mesh::service::MeshService;
use crate::mesh::wire::Message;
use crate::mesh::wire::relay::RelayFrame;
use crate::source::NodeSources;
use flotilla_cluster::source::book::SourceOwner;

/// Opens subscriptions to streams other nodes have.
pub trait Upstream: Send + Sync + 'static {
    /// Subscribes to `stream` at the node that has it now, preferring any other node
    /// over `avoid` (one that just failed this node).
    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        avoid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Feed, RelayError>>;

    /// The node that has `stream` now, by its identity (`None`: nobody).
    fn owner(&self, stream: &str) -> Option<String>;

    /// Whether the view still names `node` among those that have `stream`.
    fn still_has(&self, stream: &str, node: &str) -> bool;
}

/// One open subscription: relay frames from `node`.
pub struct Feed {
    node: String,
    receive: quinn::RecvStream,
    /// Held: dropping it would end the subscription.
    _send: quinn::SendStream,
}

impl Feed {
    /// Subscribes to `stream` at `node` on `connection` (a QUIC connection to it).
    pub async fn open(
        connection: &quinn::Connection,
        node: String,
        stream: &str,
    ) -> Result<Feed, RelayError> {
        let unreachable = |reason: String| RelayError::Unreachable {
            node: node.clone(),
            reason,
        };
        let (mut send, receive) = connection
            .open_bi()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let subscribe = Message::Subscribe {
            stream: stream.to_string(),
        };
        exchange::send(&mut send, &subscribe)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Feed {
            node,
            receive,
            _send: send,
        })
    }

    /// The origin's identity (`host:port`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The next relay frame (no deadline: the caller applies its source timeout).
    pub async fn next(&mut self) -> Result<RelayFrame, RelayError> {
        read_frame(&mut self.receive)
            .await
            .map_err(|error| match error {
                ReadError::Wire(error) => RelayError::BadFrame {
                    node: self.node.clone(),
                    error,
                },
                ReadError::Closed(reason) => RelayError::Lost {
                    node: self.node.clone(),
                    reason,
                },
            })
    }
}

/// The mesh as an [`Upstream`]: this cluster's nodes first, then the sources.
#[derive(Clone)]
pub struct MeshUpstream {
    pub mesh: MeshService,
    pub links: MeshLinks,
    /// Other clusters this node restreams.
    pub sources: Option<NodeSources>,
}

/// The node a subscription goes to.
enum Chosen {
    /// A peer of this cluster: its view key, its identity.
    Peer(String, String),
    /// A node of a source cluster.
    Source(SourceOwner),
}

impl Chosen {
    fn id(&self) -> &str {
        match self {
            Chosen::Peer(_, id) => id,
            Chosen::Source(owner) => &owner.node,
        }
    }
}

impl MeshUpstream {
    /// The node to subscribe to: a peer that has the stream, else a source's node,
    /// preferring one that is not `avoid`.
    fn choose(&self, stream: &str, avoid: Option<&str>) -> Option<Chosen> {
        let now_ms = self.links.now_ms();
        {
            let view = self.mesh.view().read().unwrap_or_else(|p| p.into_inner());
            let located = view.locate(stream, now_ms);
            let chosen = located
                .iter()
                .find(|peer| Some(peer.id.as_str()) != avoid)
                .or(located.first());
            if let Some(peer) = chosen {
                return Some(Chosen::Peer(peer.name.clone(), peer.id.clone()));
            }
        }
        let owners = self.sources.as_ref()?.locate(stream);
        let chosen = owners
            .iter()
            .find(|owner| Some(owner.node.as_str()) != avoid)
            .or(owners.first())?;
        Some(Chosen::Source(chosen.clone()))
    }
}

impl Upstream for MeshUpstream {
    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        avoid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Feed, RelayError>> {
        Box::pin(async move {
            let chosen = self.choose(stream, avoid).ok_or(RelayError::NoOwner)?;
            let node = chosen.id().to_string();
            let unreachable = |reason: String| RelayError::Unreachable {
                node: node.clone(),
                reason,
            };
            let connection = match &chosen {
                Chosen::Peer(key, _) => self
                    .links
                    .connection(key)
                    .await
                    .map(|(_, connection)| connection)
                    .map_err(|e| unreachable(e.to_string()))?,
                Chosen::Source(owner) => {
                    let sources = self.sources.as_ref().ok_or(RelayError::NoOwner)?;
                    sources
                        .owner_connection(owner)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?
                }
            };
            Feed::open(&connection, node, stream).await
        })
    }

    fn owner(&self, stream: &str) -> Option<String> {
        self.choose(stream, None)
            .map(|chosen| chosen.id().to_string())
    }

    fn still_has(&self, stream: &str, node: &str) -> bool {
        let now_ms = self.links.now_ms();
        {
            let view = self.mesh.view().read().unwrap_or_else(|p| p.into_inner());
            let located = view.locate(stream, now_ms);
            if !located.is_empty() {
                // This cluster has the stream: a relay follows its owner here, never a
                // source's.
                return located.iter().any(|peer| peer.id == node);
            }
        }
        self.sources
            .as_ref()
            .is_some_and(|sources| sources.still_has(stream, node))
    }
}
