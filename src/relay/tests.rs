//! The relay against peers that misbehave, over real QUIC connections on loopback: a
//! node without the cluster key subscribes to nothing, and an origin that sends bytes
//! that are not relay frames is cut off with the fault named as the peer's, the next
//! subscription preferring another node.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Feed, RelayError, Upstream};
use crate::media::follow::Replica;
use crate::media::live::{LiveStream, Packaging};
use crate::mesh::auth::{self, ClusterIdentity, MESH_ALPN};
use crate::mesh::exchange;
use crate::mesh::service::{MeshService, PeerTarget, RelayServer, start_for_test};
use crate::mesh::wire::Message;
use flotilla_otp::rt::Runtime;

const KEY: &str = "relay-unit-test-key-0123456789";

/// An origin whose answer to every subscription is `bytes`.
struct Garbage(&'static [u8]);

impl RelayServer for Garbage {
    fn serve(
        &self,
        _peer: std::net::SocketAddr,
        _stream: String,
        mut send: quinn::SendStream,
    ) -> BoxFuture<'static, ()> {
        let bytes = self.0;
        Box::pin(async move {
            let _ = send.write_all(bytes).await;
            let _ = send.finish();
            // Keep the stream until the subscriber has read it.
            let _ = send.stopped().await;
        })
    }
}

/// Subscribes straight to one node, recording which node each attempt was asked to
/// avoid.
struct Direct {
    from: MeshService,
    to: PeerTarget,
    avoided: Mutex<Vec<Option<String>>>,
}

impl Upstream for Direct {
    fn subscribe<'a>(
        &'a self,
        stream: &'a str,
        avoid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Feed, RelayError>> {
        self.avoided.lock().unwrap().push(avoid.map(str::to_string));
        Box::pin(async move {
            let connection =
                self.from
                    .connect(&self.to)
                    .await
                    .map_err(|e| RelayError::Unreachable {
                        node: self.to.key.clone(),
                        reason: e.to_string(),
                    })?;
            Feed::open(&connection, self.to.key.clone(), stream).await
        })
    }

    fn owner(&self, _stream: &str) -> Option<String> {
        Some(self.to.key.clone())
    }

    fn still_has(&self, _stream: &str, _node: &str) -> bool {
        true
    }
}

fn target(node: &MeshService) -> PeerTarget {
    PeerTarget {
        key: node.local_addr().unwrap().to_string(),
        address: node.local_addr().unwrap(),
        identity: ClusterIdentity::derive(KEY).unwrap(),
    }
}

/// Relay frames that break the protocol: an announced length past the limit, a frame of
/// another version, a frame whose head is not a relay head.
const BAD_ANSWERS: [&[u8]; 3] = [
    &[0xff, 0xff, 0xff, 0xff],
    &[0, 0, 0, 6, 0, 99, 0, 0, 0, 0],
    &[0, 0, 0, 8, 0, 6, 0, 4, 0xff, 0xff, 0xff, 0xff],
];

#[tokio::test]
async fn an_origin_sending_bad_frames_is_cut_off_as_the_peers_fault() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for answer in BAD_ANSWERS {
        let origin = start_for_test(Runtime::production(), "origin", KEY, vec![]);
        origin.set_relay(Arc::new(Garbage(answer)));
        let edge = start_for_test(Runtime::production(), "edge", KEY, vec![]);
        let upstream = Direct {
            to: target(&origin),
            from: edge,
            avoided: Mutex::default(),
        };
        let live = LiveStream::with_origin("cam", Packaging::default(), true);
        let mut replica = Replica::new(live.clone());
        let reason =
            super::edge::follow(&upstream, &mut replica, &Runtime::production(), 1_000).await;
        assert!(reason.contains("sent a bad relay frame"), "{reason}");
        let avoided = upstream.avoided.lock().unwrap().clone();
        assert_eq!(avoided[0], None);
        assert_eq!(
            avoided[1].as_deref(),
            Some(upstream.to.key.as_str()),
            "the next attempt prefers another node"
        );
        assert!(live.newest_segment().is_none(), "nothing taken from it");
    }
}

/// A QUIC client without a cluster certificate (here one that speaks the mesh ALPN with
/// the shell's login configuration) is closed before it can subscribe to anything.
#[tokio::test]
async fn a_node_without_the_cluster_key_subscribes_to_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let origin = start_for_test(Runtime::production(), "origin", KEY, vec![]);
    origin.set_relay(Arc::new(Garbage(b"media only for members")));
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(
        auth::login_client_config(MESH_ALPN, &auth::MeshCrypto::system()).unwrap(),
    );
    let connection = client
        .connect(origin.local_addr().unwrap(), "flotilla-shell")
        .unwrap()
        .await
        .unwrap();
    let subscribed = async {
        let (mut send, mut receive) = connection.open_bi().await.ok()?;
        let subscribe = Message::Subscribe {
            stream: "cam".into(),
        };
        exchange::send(&mut send, &subscribe).await.ok()?;
        let mut first = [0u8; 4];
        receive.read_exact(&mut first).await.ok()?;
        Some(first)
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), subscribed)
        .await
        .expect("the node answers or closes");
    assert_eq!(answer, None, "no relay frame for a node without the key");
    let closed = connection.close_reason().expect("closed by the node");
    assert!(
        closed
            .to_string()
            .contains("the mesh needs the cluster key"),
        "{closed}"
    );
}
