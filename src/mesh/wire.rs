//! The mesh wire protocol: the one module that encodes and decodes what nodes say to each
//! other.
//!
//! A frame is `[length: u32 BE][version: u16 BE][bincode payload]`. The length is checked
//! against [`MAX_FRAME_BYTES`] before anything is allocated; an unknown version is refused
//! by number (so a mixed-version cluster says so instead of misreading); after decoding,
//! every count and string is checked against its limit. bincode is pinned to 2.0.1 (3.0.0
//! is an empty crate) and used only here, so it can be swapped without touching the mesh.

pub mod relay;

use flotilla_cluster::mesh::view::{IngestRole, RemoteStream};
use serde::{Deserialize, Serialize};

/// The protocol version this node speaks.
pub const WIRE_VERSION: u16 = 8;
/// Largest frame: 1,000 streams take ~60 KiB; 1 MiB leaves room for 10,000.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Most streams in one state message.
pub const MAX_STREAMS: usize = 10_000;
/// Most peers one node tells about.
pub const MAX_PEERS: usize = 256;
/// Longest name or URL carried.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most return times in a hello (each list): a node keeps no more.
pub const MAX_RETURNS: usize = flotilla_cluster::mesh::history::RETURNS_KEPT;

/// A node's load, as the cluster overview and the balancer read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub cpu_usage: f32,
    pub memory_usage: f32,
    pub total_clients: u64,
    pub online_streams: u64,
    pub input_kbit: u64,
    pub output_kbit: u64,
    pub bandwidth_usage: f32,
    pub total_bandwidth: u64,
    pub uptime: u64,
}

/// One stream as a peer advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub name: String,
    pub alive: bool,
    pub ondemand: bool,
    pub clients: u64,
    pub bitrate_kbit: u64,
    /// Capture epoch of a cluster_ingest stream (0 otherwise).
    pub epoch: u64,
    /// The sender's part in a cluster_ingest stream.
    pub ingest: IngestRole,
    /// The sender relays the stream from another node (see `RemoteStream::relayed`).
    pub relayed: bool,
}

impl StreamEntry {
    /// The entry of stream `name` with what is advertised about it.
    pub fn new(name: &str, stream: RemoteStream) -> StreamEntry {
        StreamEntry {
            name: name.to_string(),
            alive: stream.alive,
            ondemand: stream.ondemand,
            clients: stream.clients,
            bitrate_kbit: stream.bitrate_kbit,
            epoch: stream.epoch,
            ingest: stream.ingest,
            relayed: stream.relayed,
        }
    }

    /// What the entry advertises about its stream, as the cluster view keeps it.
    pub fn remote(&self) -> RemoteStream {
        RemoteStream {
            alive: self.alive,
            ondemand: self.ondemand,
            clients: self.clients,
            bitrate_kbit: self.bitrate_kbit,
            epoch: self.epoch,
            ingest: self.ingest,
            relayed: self.relayed,
        }
    }
}

/// How to reach a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    /// Its identity in the cluster, `host:port` (`config::identity::NodeIdentity::id`):
    /// what tells nodes apart, however many share a machine or a hostname.
    pub id: String,
    /// Its name for people (logs, the cluster overview).
    pub hostname: String,
    /// `host:port` of its mesh endpoint.
    pub mesh: String,
    /// Where viewers are redirected (`http://host:port`).
    pub public_url: String,
    /// Where RTMP players are redirected (`rtmp://host:port`; empty without RTMP).
    pub rtmp_url: String,
}

/// Messages between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Opens an exchange, both ways: who is talking, and which of the other side's
    /// states it already has (so that the other side can send only the difference).
    ///
    /// It also carries the sender's own history, which changes rarely but is read at
    /// every exchange (mesh::history): how long it has been up, when it restarted or
    /// rejoined the cluster (its clock), and which of the receiver's restarts it saw
    /// (the receiver's clock), so a node learns its own restarts.
    Hello {
        node: NodeAddress,
        /// Orders the sender's lives: above every incarnation of it a peer has told it
        /// of, whatever its wall clock did (see `mesh::service`).
        incarnation: u64,
        /// The sender's start, Unix ms in its own clock: what its uptime, returns and
        /// restarts are measured against.
        started_ms: u64,
        known_incarnation: u64,
        known_version: u64,
        uptime_ms: u64,
        returns_ms: Vec<u64>,
        your_restarts_ms: Vec<u64>,
    },
    /// A node's state: load, streams (a delta unless `full`) and the nodes it knows.
    /// `version` grows with every change within an incarnation, so a receiver never
    /// applies an older state over a newer one.
    State {
        incarnation: u64,
        version: u64,
        load: NodeLoad,
        full: bool,
        upserts: Vec<StreamEntry>,
        removals: Vec<String>,
        peers: Vec<NodeAddress>,
    },
    /// Opens a relay subscription (the first frame of its QUIC stream): the answer is
    /// relay frames (`wire::relay`) carrying `stream`'s media, until either side ends it.
    Subscribe { stream: String },
    /// Asks for the streams of the answering node's cluster and where each runs (the
    /// first frame of its QUIC stream; the answer is one `Catalog`). A node restreaming
    /// another cluster (`source`) asks it: unlike a hello, it makes the asker nobody's
    /// peer, so an edge never joins the cluster it restreams.
    ListStreams,
    /// The streams a cluster offers, as the answering node sees it: every stream some
    /// node captures (never a relayed copy), with those nodes best first.
    Catalog {
        /// The nodes the streams run on (the answering node first).
        nodes: Vec<CatalogNode>,
        streams: Vec<CatalogStream>,
    },
}

/// A node of a catalog: its identity and where to dial its mesh (the address the
/// answering node dials it at: its private one where the config gives it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogNode {
    pub id: String,
    pub mesh: String,
}

/// A stream of a catalog: the nodes that have it, as indices into the catalog's nodes,
/// in the order a subscriber tries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogStream {
    pub name: String,
    pub owners: Vec<u16>,
}

/// Why a frame was refused. The peer is at fault for every one of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("frame shorter than its header")]
    Truncated,
    #[error("peer speaks mesh protocol version {0}; this node speaks {WIRE_VERSION}")]
    UnsupportedVersion(u16),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message exceeds a limit: {0}")]
    Limit(&'static str),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a message as one frame (length, version, payload).
pub fn encode(message: &Message) -> Result<Vec<u8>, WireError> {
    validate(message)?;
    let payload = bincode::serde::encode_to_vec(message, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let length = payload.len() + 2;
    if length > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(length));
    }
    let mut frame = Vec::with_capacity(4 + length);
    frame.extend_from_slice(&(length as u32).to_be_bytes());
    frame.extend_from_slice(&WIRE_VERSION.to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// The body length announced by a frame header, checked before reading the body.
pub fn body_length(header: [u8; 4]) -> Result<usize, WireError> {
    let length = u32::from_be_bytes(header) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(length));
    }
    if length < 2 {
        return Err(WireError::Truncated);
    }
    Ok(length)
}

/// Decodes a frame body (version and payload, without the length).
pub fn decode_body(body: &[u8]) -> Result<Message, WireError> {
    let [high, low, payload @ ..] = body else {
        return Err(WireError::Truncated);
    };
    let version = u16::from_be_bytes([*high, *low]);
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let (message, used): (Message, usize) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            payload.len() - used
        )));
    }
    validate(&message)?;
    Ok(message)
}

/// Decodes one whole frame (length included).
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let header: [u8; 4] = frame
        .get(..4)
        .ok_or(WireError::Truncated)?
        .try_into()
        .expect("4 bytes");
    let length = body_length(header)?;
    let body = frame.get(4..4 + length).ok_or(WireError::Truncated)?;
    decode_body(body)
}

fn text(value: &str) -> Result<(), WireError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(WireError::Limit("a name or URL is too long"));
    }
    Ok(())
}

fn address(node: &NodeAddress) -> Result<(), WireError> {
    text(&node.id)?;
    text(&node.hostname)?;
    text(&node.mesh)?;
    text(&node.public_url)?;
    text(&node.rtmp_url)
}

fn validate(message: &Message) -> Result<(), WireError> {
    match message {
        Message::Hello {
            node,
            returns_ms,
            your_restarts_ms,
            ..
        } => {
            if returns_ms.len() > MAX_RETURNS || your_restarts_ms.len() > MAX_RETURNS {
                return Err(WireError::Limit("too many return times"));
            }
            address(node)
        }
        Message::State {
            upserts,
            removals,
            peers,
            ..
        } => {
            if upserts.len() + removals.len() > MAX_STREAMS {
                return Err(WireError::Limit("too many streams"));
            }
            if peers.len() > MAX_PEERS {
                return Err(WireError::Limit("too many peers"));
            }
            upserts.iter().try_for_each(|s| text(&s.name))?;
            removals.iter().try_for_each(|s| text(s))?;
            peers.iter().try_for_each(address)
        }
        Message::Subscribe { stream } => text(stream),
        Message::ListStreams => Ok(()),
        Message::Catalog { nodes, streams } => {
            if nodes.len() > MAX_PEERS + 1 {
                return Err(WireError::Limit("too many nodes in a catalog"));
            }
            if streams.len() > MAX_STREAMS {
                return Err(WireError::Limit("too many streams"));
            }
            for node in nodes {
                text(&node.id)?;
                text(&node.mesh)?;
            }
            for stream in streams {
                text(&stream.name)?;
                if stream.owners.len() > nodes.len()
                    || stream.owners.iter().any(|&i| usize::from(i) >= nodes.len())
                {
                    return Err(WireError::Limit("a stream's owner is not a catalog node"));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state(streams: usize) -> Message {
        Message::State {
            incarnation: 7,
            version: 42,
            load: NodeLoad {
                cpu_usage: 12.5,
                total_clients: 3,
                ..NodeLoad::default()
            },
            full: true,
            upserts: (0..streams)
                .map(|i| StreamEntry {
                    name: format!("cam{i:04}"),
                    alive: i % 2 == 0,
                    ondemand: false,
                    clients: i as u64,
                    bitrate_kbit: 300,
                    epoch: 0,
                    ingest: IngestRole::None,
                    relayed: false,
                })
                .collect(),
            removals: vec!["old".into()],
            peers: vec![NodeAddress {
                id: "127.0.0.1:8081".into(),
                hostname: "b".into(),
                mesh: "127.0.0.1:8081".into(),
                public_url: "http://127.0.0.1:8081".into(),
                rtmp_url: "rtmp://127.0.0.1:1935".into(),
            }],
        }
    }

    #[test]
    fn round_trips_and_stays_small() {
        let message = state(1_000);
        let frame = encode(&message).unwrap();
        assert_eq!(decode(&frame).unwrap(), message);
        assert!(
            frame.len() < 64 * 1024,
            "1,000 streams take {} bytes",
            frame.len()
        );
    }

    #[test]
    fn refuses_oversized_frames_before_reading_them() {
        assert_eq!(
            body_length(u32::MAX.to_be_bytes()),
            Err(WireError::TooLarge(u32::MAX as usize))
        );
        assert!(matches!(
            encode(&state(MAX_STREAMS + 1)),
            Err(WireError::Limit(_))
        ));
    }

    fn hello(returns: usize) -> Message {
        Message::Hello {
            node: NodeAddress {
                id: "a:80".into(),
                hostname: "a".into(),
                mesh: "10.0.0.1:4443".into(),
                public_url: "http://10.0.0.1".into(),
                rtmp_url: String::new(),
            },
            incarnation: 1_700_000_000_000,
            started_ms: 1_700_000_000_000,
            known_incarnation: 0,
            known_version: 0,
            uptime_ms: 5_000,
            returns_ms: (0..returns as u64).collect(),
            your_restarts_ms: vec![1_699_999_000_000],
        }
    }

    #[test]
    fn a_hello_carries_a_bounded_history() {
        let message = hello(MAX_RETURNS);
        assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        let too_many = hello(MAX_RETURNS + 1);
        assert!(matches!(encode(&too_many), Err(WireError::Limit(_))));
        // A peer that sends more anyway is refused on arrival.
        let payload = bincode::serde::encode_to_vec(&too_many, config()).unwrap();
        let mut frame = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&WIRE_VERSION.to_be_bytes());
        frame.extend_from_slice(&payload);
        assert_eq!(
            decode(&frame),
            Err(WireError::Limit("too many return times"))
        );
    }

    #[test]
    fn refuses_other_versions_by_number() {
        let mut frame = encode(&state(1)).unwrap();
        let other = WIRE_VERSION + 1;
        frame[4..6].copy_from_slice(&other.to_be_bytes());
        assert_eq!(decode(&frame), Err(WireError::UnsupportedVersion(other)));
    }

    #[test]
    fn refuses_truncated_and_trailing_bytes() {
        let frame = encode(&state(3)).unwrap();
        assert!(decode(&frame[..frame.len() - 1]).is_err());
        let mut longer = frame.clone();
        longer.push(0);
        let length = (longer.len() - 4) as u32;
        longer[..4].copy_from_slice(&length.to_be_bytes());
        assert!(matches!(decode(&longer), Err(WireError::Malformed(_))));
    }

    fn catalog(streams: usize) -> Message {
        Message::Catalog {
            nodes: vec![
                CatalogNode {
                    id: "a:80".into(),
                    mesh: "10.0.0.1:80".into(),
                },
                CatalogNode {
                    id: "b:80".into(),
                    mesh: "10.0.0.2:80".into(),
                },
            ],
            streams: (0..streams)
                .map(|i| CatalogStream {
                    name: format!("live/cam{i:05}"),
                    owners: vec![(i % 2) as u16],
                })
                .collect(),
        }
    }

    #[test]
    fn a_catalog_of_the_most_streams_fits_a_frame_and_names_only_its_nodes() {
        let full = catalog(MAX_STREAMS);
        assert_eq!(decode(&encode(&full).unwrap()).unwrap(), full);
        assert!(matches!(
            encode(&catalog(MAX_STREAMS + 1)),
            Err(WireError::Limit(_))
        ));
        let Message::Catalog { nodes, mut streams } = catalog(1) else {
            unreachable!()
        };
        streams[0].owners = vec![2];
        let dangling = Message::Catalog { nodes, streams };
        assert_eq!(
            encode(&dangling),
            Err(WireError::Limit("a stream's owner is not a catalog node"))
        );
        assert_eq!(
            decode(&encode(&Message::ListStreams).unwrap()),
            Ok(Message::ListStreams)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
            if bytes.len() >= 2 {
                let _ = decode_body(&bytes);
            }
        }

        #[test]
        fn encode_then_decode_is_identity(streams in 0usize..50, incarnation in any::<u64>(), version in any::<u64>()) {
            let Message::State { load, full, upserts, removals, peers, .. } = state(streams) else { unreachable!() };
            let message = Message::State { incarnation, version, load, full, upserts, removals, peers };
            prop_assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        }
    }
}
