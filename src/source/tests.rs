//! Sources over real QUIC on loopback: an edge asks a node of another cluster for its
//! catalog with that cluster's key (a key it dials with only) and takes what its rules
//! allow; with a wrong key it is refused at the handshake; and the origin learns no peer
//! from it either way.

use flotilla_cluster::mesh::view::IngestRole;
use flotilla_otp::rt::Runtime;

use super::{NodeSources, SourceError};
use crate::mesh::auth::{ClusterIdentity, MeshKeys};
use crate::mesh::service::{start_for_test, start_for_test_with_keys};
use crate::mesh::wire::StreamEntry;

const ORIGIN_KEY: &str = "source-unit-origin-key-0123456789";
const EDGE_KEY: &str = "source-unit-edge-key-0123456789";
const WRONG_KEY: &str = "source-unit-wrong-key-0123456789";

fn alive(name: &str) -> StreamEntry {
    StreamEntry {
        name: name.into(),
        alive: true,
        ondemand: false,
        clients: 0,
        bitrate_kbit: 0,
        epoch: 0,
        ingest: IngestRole::None,
        relayed: false,
    }
}

fn derive(key: &str) -> ClusterIdentity {
    ClusterIdentity::derive(key).unwrap()
}

#[tokio::test]
async fn an_edge_lists_another_clusters_streams_with_its_key_and_never_without() {
    let runtime = Runtime::production();
    let relayed_copy = StreamEntry {
        relayed: true,
        ..alive("live/copy")
    };
    let origin = start_for_test(
        runtime.clone(),
        "origin",
        ORIGIN_KEY,
        vec![alive("live/a"), alive("live/b"), alive("cam"), relayed_copy],
    );
    let port = origin.local_addr().unwrap().port();
    let config = crate::config::load_str(
        "edge.conf",
        &format!(
            "cluster_key {EDGE_KEY}; http 80;\n\
             source 127.0.0.1:{port} {{ only live/*; except live/b; cluster_key {ORIGIN_KEY}; }}\n\
             source 127.0.0.1:{port}/x {{ cluster_key {WRONG_KEY}; }}\n"
        ),
    )
    .expect("the edge's config loads")
    .config;
    let keys = MeshKeys {
        trusted: vec![derive(EDGE_KEY)],
        dial_only: vec![derive(ORIGIN_KEY), derive(WRONG_KEY)],
    };
    let edge = start_for_test_with_keys(runtime.clone(), "edge", keys, Vec::new());
    let sources = NodeSources::new(&config, edge, &derive(EDGE_KEY), runtime)
        .expect("identities derive")
        .expect("the config has sources");

    let good = format!("127.0.0.1:{port}");
    let taken = sources
        .fetch_catalog(&good)
        .await
        .expect("the origin answers");
    assert_eq!(
        taken, 1,
        "only live/a: live/b is excepted, cam not under live/, a copy never offered"
    );
    let owners = sources.locate("live/a");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].node, "origin:80");
    assert!(sources.locate("live/b").is_empty());
    assert!(sources.locate("live/copy").is_empty());
    assert_eq!(
        sources.located_stream("live/a/index.m3u8").as_deref(),
        Some("live/a")
    );

    let wrong = format!("127.0.0.1:{port}/x");
    match sources.fetch_catalog(&wrong).await {
        Err(SourceError::Connect { error, .. }) => assert!(error.is_unauthorized(), "{error}"),
        other => panic!("a wrong key was not refused at the handshake: {other:?}"),
    }
    let book = sources.book();
    assert!(
        book.sources()[1].last_error.is_some(),
        "the failure is in the book"
    );
    let view = origin.view().read().unwrap();
    assert_eq!(
        view.peers(0).count(),
        0,
        "an edge is no peer of the cluster it asks"
    );
}
