//! The load of a balancer's servers as this node knows it: the mesh's last report for a
//! peer (no polling of its own), the stats sampler for this node. Read by the balancer
//! actor every tick to publish its table, and by a request itself when that table is
//! not fresh.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use flotilla_cluster::balancer::choose::Server;
use flotilla_cluster::balancer::{BalancerIo, LoadTable};
use flotilla_cluster::mesh::view::{ClusterView, PeerState};

use crate::config::Config;
use crate::config::identity::NodeIdentity;
use crate::live::Live;
use crate::media::directory::Directory;
use crate::stats::{ALIVE_WITHIN_MS, StatsBoard};

/// A server of a balancer, from the config.
#[derive(Debug, Clone)]
struct ServerPlan {
    /// As configured (`host[:port]`).
    pub name: Arc<str>,
    /// Its key in the cluster view (`host:port`).
    pub key: String,
    /// It is this node.
    pub is_self: bool,
    pub max_bitrate_kbit: Option<u64>,
    pub countries: Arc<[String]>,
    pub countries_default: bool,
}

/// Every balancer's servers in `config`, as this node (`identity`) sees them.
fn server_plans(config: &Config, identity: &NodeIdentity) -> BTreeMap<String, Vec<ServerPlan>> {
    config
        .balancers
        .iter()
        .map(|balancer| {
            let servers = balancer
                .servers
                .iter()
                .map(|server| ServerPlan {
                    name: server.address.to_string().into(),
                    key: crate::config::identity::node_key(&server.address),
                    is_self: identity.is_self(&server.address),
                    max_bitrate_kbit: server.max_bitrate.map(|b| b.bits_per_second / 1000),
                    countries: server
                        .countries
                        .iter()
                        .map(|c| c.to_ascii_uppercase())
                        .collect::<Vec<_>>()
                        .into(),
                    countries_default: server.countries_default,
                })
                .collect();
            (balancer.name.clone(), servers)
        })
        .collect()
}

/// Reads the servers' load for every balancer of the node. Cheap to share.
pub struct NodeBalancerIo {
    /// Servers by balancer: replaced by a reload.
    plans: Live<BTreeMap<String, Vec<ServerPlan>>>,
    view: Option<Arc<RwLock<ClusterView>>>,
    stats: StatsBoard,
    directory: Directory,
}

impl NodeBalancerIo {
    /// The balancers of `config` as seen from this node.
    pub fn new(
        config: &Config,
        identity: &NodeIdentity,
        view: Option<Arc<RwLock<ClusterView>>>,
        stats: StatsBoard,
        directory: Directory,
    ) -> NodeBalancerIo {
        NodeBalancerIo {
            plans: Live::new(server_plans(config, identity)),
            view,
            stats,
            directory,
        }
    }

    /// Takes the servers of a reloaded config.
    pub fn reconfigure(&self, config: &Config, identity: &NodeIdentity) {
        self.plans.replace(server_plans(config, identity));
    }

    /// Whether server `index` of balancer `name` (config order) carries `stream` now.
    pub(super) fn carries(&self, name: &str, index: usize, stream: &str, now_ms: u64) -> bool {
        let plans = self.plans.get();
        let Some(plan) = plans.get(name).and_then(|plans| plans.get(index)) else {
            return false;
        };
        if plan.is_self {
            return self
                .directory
                .get(stream)
                .is_some_and(|live| live.is_alive(now_ms, ALIVE_WITHIN_MS));
        }
        let Some(view) = self.view.as_ref() else {
            return false;
        };
        let view = view.read().unwrap_or_else(|p| p.into_inner());
        view.peer(&plan.key, now_ms)
            .and_then(|(peer, _)| peer.streams.get(stream))
            .is_some_and(|entry| entry.alive || entry.ondemand)
    }
}

impl BalancerIo for NodeBalancerIo {
    fn load(&self, name: &str, now_ms: u64) -> Option<LoadTable> {
        let every = self.plans.get();
        let plans = every.get(name)?;
        let view = self
            .view
            .as_ref()
            .map(|view| view.read().unwrap_or_else(|p| p.into_inner()));
        let mut table = LoadTable {
            taken_ms: now_ms,
            fresh_until_ms: now_ms,
            servers: Vec::with_capacity(plans.len()),
            versions: Vec::with_capacity(plans.len()),
            urls: Vec::with_capacity(plans.len()),
        };
        for plan in plans {
            let mut server = Server {
                name: plan.name.clone(),
                up: false,
                max_bitrate_kbit: plan.max_bitrate_kbit,
                countries: plan.countries.clone(),
                countries_default: plan.countries_default,
                clients: 0,
                output_kbit: 0,
                online_streams: 0,
                total_bandwidth_kbit: 0,
            };
            let (version, url) = if plan.is_self {
                let own = self.stats.snapshot();
                server.up = true;
                server.clients = own.total_clients;
                server.output_kbit = own.output_kbit;
                server.online_streams = own.online_streams;
                server.total_bandwidth_kbit = own.total_bandwidth / 1000;
                // Our own figures refresh with the stats sampler: its clock is the version.
                ((0, own.uptime), None)
            } else {
                match view.as_ref().and_then(|view| view.peer(&plan.key, now_ms)) {
                    Some((peer, state)) => {
                        server.up = state == PeerState::Alive;
                        server.clients = peer.load.total_clients;
                        server.output_kbit = peer.load.output_kbit;
                        server.online_streams = peer.load.online_streams;
                        server.total_bandwidth_kbit = peer.load.total_bandwidth / 1000;
                        (
                            (peer.incarnation, peer.version),
                            Some(peer.viewer_base_url()),
                        )
                    }
                    None => ((0, 0), Some(format!("http://{}", plan.key))),
                }
            };
            table.servers.push(server);
            table.versions.push(version);
            table.urls.push(url);
        }
        Some(table)
    }
}
