//! The simulated cluster: one shared Flussonic config, and a turmoil host per node that
//! runs the node's real core ([`NodeCore`]) on the simulated network with fake cameras.

use std::fmt::Write as _;
use std::sync::Arc;

use flotilla::config::identity::NodeIdentity;
use flotilla::node_core::{NodeCore, NodeEnv};
use flotilla_cluster::ingest::sabotage::Sabotage;
use flotilla_otp::rt::Runtime;

use crate::media::{SimMedia, SimStreams};
use crate::profile::Profile;
use crate::udp::DatagramFaults;
use crate::world::{NodeHandle, World, sim_ms};

/// Unix ms of the simulated epoch (2026-01-01): wall clocks start here.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// The mesh (and HTTP) port of every node that has a host of its own.
pub const PORT: u16 = 80;

/// The one hostname of every node when they share an address ([`Profile::shared_address`]).
pub const SHARED_HOST: &str = "box";

/// The port of the first node on the shared address; the others count up from it.
pub const SHARED_FIRST_PORT: u16 = 8081;

/// Exchange period with each peer, ms (a LAN cluster's setting).
pub const FETCH_TIMEOUT_MS: u64 = 1_000;

/// Silence after which a peer is dead, ms.
pub const STALE_TIMEOUT_MS: u64 = 3_000;

/// The hostname node `index` gives itself.
pub fn node_hostname(profile: &Profile, index: usize) -> String {
    if profile.shared_address {
        SHARED_HOST.to_string()
    } else {
        format!("n{}", index + 1)
    }
}

/// The HTTP (and mesh) port of node `index`.
pub fn node_port(profile: &Profile, index: usize) -> u16 {
    if profile.shared_address {
        SHARED_FIRST_PORT + index as u16
    } else {
        PORT
    }
}

/// The name of node `index`: its identity in the cluster (`host:port`, what its `peer`
/// entry says), which is also its turmoil host's name, so that the names the nodes give
/// each other (owners, capturers, redirect targets) are the simulator's own.
pub fn node_name(profile: &Profile, index: usize) -> String {
    format!(
        "{}:{}",
        node_hostname(profile, index),
        node_port(profile, index)
    )
}

/// The name of stream `index`.
pub fn stream_name(index: usize) -> String {
    format!("s{index:03}")
}

/// The preferred node of stream `index` (`None` for streams without `capture_at`).
pub fn preferred_node(profile: &Profile, index: usize) -> Option<usize> {
    (index < profile.preferred_streams).then_some(index % profile.nodes)
}

/// The config every node loads: the whole cluster as peers, every stream cluster_ingest.
/// Each node adds its own listener ([`node_config_text`]).
pub fn config_text(profile: &Profile) -> String {
    let mut text = String::from("cluster_key sim-cluster-key-0123456789abcdef;\n");
    if profile.minority_restraint {
        text.push_str("cluster_ingest_minority_restraint true;\n");
    }
    for node in 0..profile.nodes {
        let _ = writeln!(
            text,
            "peer {} {{ fetch_timeout {FETCH_TIMEOUT_MS}; stale_timeout {STALE_TIMEOUT_MS}; }}",
            node_name(profile, node)
        );
    }
    for stream in 0..profile.streams {
        let name = stream_name(stream);
        let ingest = match preferred_node(profile, stream) {
            Some(node) => format!("cluster_ingest capture_at={};", node_name(profile, node)),
            None => "cluster_ingest;".to_string(),
        };
        let _ = writeln!(
            text,
            "stream {name} {{ url tshttp://camera.sim/{name}; {ingest} }}"
        );
    }
    text
}

/// The config node `index` loads: the shared text and its own HTTP listener.
pub fn node_config_text(profile: &Profile, shared: &str, index: usize) -> String {
    format!("{shared}http {};\n", node_port(profile, index))
}

/// What a host needs to (re)start its node.
#[derive(Clone)]
pub struct HostSpec {
    pub world: World,
    /// Its identity (`host:port`) and turmoil host name.
    pub name: String,
    /// The hostname it gives itself (shared by every node on a shared address).
    pub hostname: String,
    pub seed: u64,
    pub config: Arc<str>,
    pub faults: DatagramFaults,
    pub sabotage: Option<Sabotage>,
}

/// The software of a host: start the node, register it, run until the tree gives up.
pub async fn run_host(spec: HostSpec) -> turmoil::Result {
    let started_ms = sim_ms();
    let runtime = Runtime::deterministic(spec.seed ^ started_ms, EPOCH_MS + started_ms);
    // The simulator's SIGSTOP and SIGCONT for this incarnation (run.rs, the suspend fault).
    let suspension = runtime
        .suspension()
        .ok_or("a deterministic runtime can be suspended")?;
    spec.world.with(|state| {
        state.suspensions.insert(spec.name.clone(), suspension);
    });
    let loaded = flotilla::config::load_str("sim.conf", &spec.config)
        .map_err(|errors| format!("the simulated config does not load: {errors:?}"))?;
    let identity = NodeIdentity::resolve(&loaded.config, Some(&spec.hostname), None);
    if identity.id != spec.name {
        return Err(format!("{} took the identity {}", spec.name, identity.id).into());
    }
    let media_world = spec.world.clone();
    let media_name = spec.name.clone();
    let env = NodeEnv {
        mesh_net: Arc::new(crate::net::SimNet {
            seed: spec.seed ^ started_ms.rotate_left(17),
            faults: spec.faults,
            runtime: runtime.clone(),
        }),
        media: Some(Arc::new(move |directory, runtime| {
            Arc::new(SimStreams(Arc::new(SimMedia {
                world: media_world.clone(),
                node: media_name.clone(),
                incarnation_ms: started_ms,
                directory,
                runtime,
            })))
        })),
        sample_host: false,
        sabotage: spec.sabotage,
    };
    let core = NodeCore::start(&loaded, identity, runtime, env)
        .await
        .map_err(|error| format!("{} did not start: {error}", spec.name))?;
    if spec.sabotage == Some(Sabotage::LeakNode) {
        std::mem::forget(core.teardown);
    }
    let view = core
        .state
        .mesh
        .as_ref()
        .map(|mesh| mesh.view().clone())
        .ok_or("the simulated node has no mesh")?;
    spec.world.with(|state| {
        state.log(started_ms, format!("{} up", spec.name));
        state.incarnations.push((
            spec.name.clone(),
            started_ms,
            core.state.node.registry.release_watch(),
        ));
        state.nodes.insert(
            spec.name.clone(),
            NodeHandle {
                started_ms,
                context: core.state.node.clone(),
                board: core.state.ingest.clone(),
                view,
                directory: core.state.directory.clone(),
            },
        );
    });
    let _ = core.root_task.await;
    spec.world.with(|state| {
        state.log(sim_ms(), format!("{} root supervisor gave up", spec.name));
        state.nodes.remove(&spec.name);
    });
    Ok(())
}
