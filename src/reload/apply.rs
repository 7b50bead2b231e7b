//! Applying a reloaded config to a running node core, in two steps: `prepare` does
//! everything that can fail (load, check, resolve the access policies, compare) and
//! changes nothing; `commit` cannot fail and applies the differences.

use std::collections::HashSet;
use std::time::Duration;

use flotilla_cluster::tree::{
    NodePlan, SharedPlan, StreamPlan, balancer_child, peer_child, stream_child,
};
use flotilla_otp::registry::ActorPath;
use flotilla_otp::supervisor::{ChildSpec, SupervisorError, SupervisorMsg, supervisor_at};

use super::changes::{ConfigChanges, Keyed};
use super::{ConfigOrigin, ReloadError, ReloadReport};
use crate::auth::AccessRules;
use crate::config::{Config, LoadedConfig};
use crate::http::access::AccessPolicy;
use crate::http::api::ApiState;
use crate::live::Live;
use crate::plan::node_plan;
use crate::rtmp::server::RtmpContext;
use crate::srt::listener::PublishRules;

/// How long a reload waits for a supervisor to stop or start one child. A stream's
/// actor starts in microseconds (its ingest runs on its own task); a supervisor that
/// does not answer in this time is restarting, and rebuilds from the new plan anyway.
const SUPERVISOR_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a reload changes in a running node core.
#[derive(Clone)]
pub struct Reloader {
    pub origin: ConfigOrigin,
    pub state: ApiState,
    pub rtmp: RtmpContext,
    /// The actor tree's plan.
    pub plan: SharedPlan,
    /// The mesh (peers, the advertiser's on-demand streams), if the node has one.
    pub mesh: Option<crate::mesh::node::NodeMesh>,
    /// Which streams and templates ask SRT publishers for a passphrase.
    pub srt_rules: Live<PublishRules>,
}

/// A reload ready to commit: loaded, checked and compared.
pub struct Prepared {
    pub loaded: LoadedConfig,
    pub plan: NodePlan,
    pub changes: ConfigChanges,
    rules: AccessRules,
}

impl Reloader {
    /// Reads the config again and prepares it (nothing changes yet).
    pub fn prepare(&self) -> Result<Prepared, ReloadError> {
        let loaded = match self.origin.load() {
            None => return Err(ReloadError::NoFile),
            Some(Err(errors)) => return Err(ReloadError::Config(errors.to_string())),
            Some(Ok(loaded)) => loaded,
        };
        self.prepare_loaded(loaded)
    }

    /// Prepares `loaded` against the running config.
    pub fn prepare_loaded(&self, loaded: LoadedConfig) -> Result<Prepared, ReloadError> {
        let running = self.state.config.get();
        let old_plan = self.plan.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut plan = node_plan(&loaded.config, &self.state.identity);
        plan.revision = old_plan.revision + 1;
        // The cluster_ingest settings stay until a restart but for the peers' limits
        // (added peers' `channel_limit`/`cpu_limit`); `sources` links are set up at start.
        let peer_limits = std::mem::take(&mut plan.ingest.peer_limits);
        plan.ingest = old_plan.ingest.clone();
        plan.ingest.peer_limits = peer_limits;
        plan.sources = old_plan.sources.clone();
        let rules = AccessRules::from_config(&loaded.config)
            .map_err(|error| ReloadError::Config(error.to_string()))?;
        let mut changes = ConfigChanges::between(&running, &old_plan, &loaded.config, &plan);
        // Peers join and leave live only with a mesh, and with the node's own cluster key
        // (a peer's own key is a TLS identity the mesh trusts from its start).
        let own_key_only = |key: &String| {
            self.mesh.is_some()
                && loaded
                    .config
                    .peers
                    .iter()
                    .chain(&running.peers)
                    .filter(|peer| crate::config::identity::node_key(&peer.address) == *key)
                    .all(|peer| peer.cluster_key.is_none())
        };
        let (live_added, later_added): (Vec<String>, Vec<String>) =
            changes.peers.added.iter().cloned().partition(own_key_only);
        let (live_removed, later_removed): (Vec<String>, Vec<String>) = changes
            .peers
            .removed
            .iter()
            .cloned()
            .partition(own_key_only);
        for (peer, what) in later_added
            .iter()
            .map(|p| (p, "added"))
            .chain(later_removed.iter().map(|p| (p, "removed")))
        {
            changes
                .restart_only
                .push(format!("peer {peer} ({what}; with its own cluster_key)"));
        }
        changes.peers.added = live_added;
        changes.peers.removed = live_removed;
        // The plan's peers: the running ones, with the live changes.
        plan.peers = old_plan
            .peers
            .iter()
            .filter(|peer| !changes.peers.removed.contains(peer))
            .cloned()
            .chain(
                changes
                    .peers
                    .added
                    .iter()
                    .filter(|peer| plan.peers.contains(peer))
                    .cloned(),
            )
            .collect();
        Ok(Prepared {
            loaded,
            plan,
            changes,
            rules,
        })
    }

    /// Applies a prepared reload (listeners are the caller's: it bound the new ones).
    pub async fn commit(&self, prepared: Prepared) -> ReloadReport {
        let Prepared {
            loaded,
            plan,
            changes,
            rules,
        } = prepared;
        let old = self.state.config.get();
        let new = &loaded.config;
        // What requests read: swapped first, so a stream started below is served by
        // the new rules from its first request.
        self.rtmp.templates.replace(new.templates.clone());
        self.srt_rules.replace(PublishRules::of(new));
        self.state.sessions.reconfigure(new, rules);
        self.state.access.replace(AccessPolicy::from_config(new));
        self.state
            .balancers
            .reconfigure(&old, new, &self.state.identity);
        if let Some(mesh) = &self.mesh {
            mesh.ondemand.replace(ondemand_streams(new));
        }
        self.state.config.replace(new.clone());
        let old_plan = std::mem::replace(
            &mut *self.plan.write().unwrap_or_else(|p| p.into_inner()),
            plan.clone(),
        );
        self.apply_peers(&changes.peers, new).await;
        self.apply_streams(&changes.streams, &old_plan, &plan).await;
        self.apply_balancers(&changes.balancers, &plan).await;
        ReloadReport {
            revision: plan.revision,
            streams: changes.streams.clone(),
            templates: changes.templates.clone(),
            balancers: changes.balancers.clone(),
            peers: changes.peers.clone(),
            listeners_opened: changes.listeners_added.iter().map(|l| l.label()).collect(),
            listeners_closed: changes
                .listeners_removed
                .iter()
                .map(|l| l.label())
                .collect(),
            access_changed: changes.access,
            restart_required: changes.restart_only.clone(),
            warnings: loaded.warning_lines(),
        }
    }

    /// Stops, restarts and starts the streams that differ. cluster_ingest streams are
    /// the coordinator's: it takes the new plan at its next tick, starts added ones where
    /// placement says and stops removed ones; a changed one captured here is stopped, and
    /// the coordinator restarts it from the new plan.
    async fn apply_streams(&self, streams: &Keyed, old_plan: &NodePlan, plan: &NodePlan) {
        let path = ActorPath::root().child("streams");
        let Some(supervisor) = supervisor_at(&self.state.node, &path) else {
            // Restarting: it rebuilds its children from the new plan.
            return;
        };
        let find = |plan: &NodePlan, name: &str| -> Option<StreamPlan> {
            plan.streams.iter().find(|s| s.name == name).cloned()
        };
        for name in &streams.removed {
            let was_ingest = find(old_plan, name).is_some_and(|s| s.cluster_ingest);
            if !was_ingest {
                terminate(&supervisor, name).await;
            }
        }
        for name in &streams.changed {
            terminate(&supervisor, name).await;
            if let Some(stream) = find(plan, name).filter(|s| !s.cluster_ingest) {
                start(&supervisor, stream_child(stream, self.rtmp.media.clone())).await;
            }
        }
        for name in &streams.added {
            if let Some(stream) = find(plan, name).filter(|s| !s.cluster_ingest) {
                start(&supervisor, stream_child(stream, self.rtmp.media.clone())).await;
            }
        }
    }

    /// Links to added peers, unlinks removed ones (their records leave the view).
    async fn apply_peers(&self, peers: &Keyed, new: &Config) {
        let Some(mesh) = &self.mesh else {
            return;
        };
        let path = ActorPath::root().child("mesh").child("peers");
        let supervisor = supervisor_at(&self.state.node, &path);
        for key in &peers.removed {
            if let Some(supervisor) = &supervisor {
                terminate(supervisor, key).await;
            }
            mesh.links.remove_peer(key);
        }
        for key in &peers.added {
            let Some(peer) = new
                .peers
                .iter()
                .find(|peer| crate::config::identity::node_key(&peer.address) == *key)
            else {
                continue;
            };
            if self.state.identity.is_self(&peer.address) {
                continue;
            }
            if let Err(error) = mesh.add_peer(peer) {
                tracing::warn!(peer = %key, %error, "reload: could not add the peer");
                continue;
            }
            if let Some(supervisor) = &supervisor {
                let io: std::sync::Arc<dyn flotilla_cluster::mesh::PeerIo> =
                    std::sync::Arc::new(mesh.links.clone());
                start(supervisor, peer_child(key.clone(), io)).await;
            }
        }
    }

    /// Restarts the balancer instances that differ (their tables are rebuilt within one
    /// refresh; until then requests read the load directly).
    async fn apply_balancers(&self, balancers: &Keyed, plan: &NodePlan) {
        let path = ActorPath::root().child("balancers");
        let Some(supervisor) = supervisor_at(&self.state.node, &path) else {
            return;
        };
        let io = self.state.balancers.io();
        let board = self.state.balancers.board();
        for name in balancers.removed.iter().chain(&balancers.changed) {
            terminate(&supervisor, name).await;
            board.remove(name);
        }
        for name in balancers.changed.iter().chain(&balancers.added) {
            if let Some(balancer) = plan.balancers.iter().find(|b| &b.name == name) {
                let spec = balancer_child(balancer.clone(), io.clone(), board.clone());
                start(&supervisor, spec).await;
            }
        }
    }
}

/// The configured on-demand streams of `config` (the mesh advertises them as such).
pub fn ondemand_streams(config: &Config) -> HashSet<String> {
    config
        .streams
        .iter()
        .filter(|s| s.options.disabled != Some(true) && s.ondemand)
        .map(|s| s.name.clone())
        .collect()
}

/// Stops child `name` of `supervisor`; one that is not running is fine.
async fn terminate(supervisor: &ractor::ActorRef<SupervisorMsg>, name: &str) {
    let outcome = ractor::call_t!(
        supervisor,
        SupervisorMsg::TerminateChild,
        millis(SUPERVISOR_CALL_TIMEOUT),
        name.to_string()
    );
    match outcome {
        Ok(Ok(())) | Ok(Err(SupervisorError::NotFound(_))) => {}
        Ok(Err(error)) => tracing::warn!(child = %name, %error, "reload: could not stop"),
        Err(error) => tracing::warn!(child = %name, %error, "reload: no answer stopping"),
    }
}

/// Starts `spec` under `supervisor`; one already running (started meanwhile by the
/// supervisor's own rebuild or the ingest coordinator) is fine.
async fn start(supervisor: &ractor::ActorRef<SupervisorMsg>, spec: ChildSpec) {
    let id = spec.id.clone();
    let outcome = ractor::call_t!(
        supervisor,
        SupervisorMsg::StartChild,
        millis(SUPERVISOR_CALL_TIMEOUT),
        spec
    );
    match outcome {
        Ok(Ok(())) | Ok(Err(SupervisorError::DuplicateId(_))) => {}
        Ok(Err(error)) => tracing::warn!(child = %id, %error, "reload: could not start"),
        Err(error) => tracing::warn!(child = %id, %error, "reload: no answer starting"),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}
