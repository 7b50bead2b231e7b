//! Balancers on the request path: `/NAME/STREAM/<rest>` is answered with a redirect to
//! the least loaded server of balancer NAME (302; 307 for a WHIP/WHEP `POST`), served
//! here when the choice is this node, or refused with 503 and `Retry-After` when no server
//! can take the viewer.
//!
//! The decision is `flotilla_actors::balancer::choose` (pure); this module feeds it the
//! servers' load as the mesh last reported it (no polling of its own), this node's own
//! figures, and the redirects issued since each server's last report. It reads shared
//! state only: a request never waits on an actor.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use flotilla_actors::balancer::choose::{Mode, NoServer, Server, choose};
use flotilla_actors::mesh::view::{ClusterView, PeerState};
use flotilla_actors::rt::Runtime;
use serde::Serialize;

use crate::config::Config;
use crate::config::identity::NodeIdentity;
use crate::media::directory::Directory;
use crate::stats::{ALIVE_WITHIN_MS, StatsBoard};

/// Decisions kept per balancer for the API (the most recent ones).
pub const RECENT_DECISIONS: usize = 32;
/// `Retry-After` of a 503 when every server is down or full, seconds: about one
/// exchange period, after which the mesh may know better.
pub const RETRY_AFTER_SECONDS: u64 = 3;

/// A server of a balancer, from the config.
#[derive(Debug, Clone)]
struct ServerPlan {
    /// As configured (`host[:port]`).
    name: String,
    /// Its key in the cluster view (`host:port`).
    key: String,
    /// It is this node.
    is_self: bool,
    max_bitrate_kbit: Option<u64>,
    countries: Vec<String>,
    countries_default: bool,
}

/// One decision, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Unix ms.
    pub at_ms: u64,
    /// The stream asked for.
    pub stream: String,
    /// The server chosen, or why none.
    pub outcome: String,
}

/// A server's state version: (incarnation, version) for a peer, the sampler's tick for
/// this node. A new one means new figures, which already include earlier redirects.
type StateVersion = (u64, u64);

/// The servers with their load now, the state version of each figure, and where to send
/// viewers (`None`: this node).
type ServerSnapshot = (
    Vec<Server>,
    BTreeMap<String, StateVersion>,
    Vec<Option<String>>,
);

struct Instance {
    mode: Mode,
    servers: Vec<ServerPlan>,
    /// Per server: the state version its count belongs to, and redirects sent since.
    pending: Mutex<BTreeMap<String, (StateVersion, u64)>>,
    decisions: Mutex<VecDeque<Decision>>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// Not a balancer path.
    Pass,
    /// This node was chosen: serve `path` (the request path without `/NAME`).
    Local(String),
    /// Redirect there (status 302 or 307).
    Redirect(u16, String),
    /// No server can take the viewer.
    Unavailable(NoServer),
}

/// Every balancer of the node. Cheap to clone.
#[derive(Clone)]
pub struct Balancers {
    instances: Arc<BTreeMap<String, Instance>>,
    view: Option<Arc<RwLock<ClusterView>>>,
    stats: StatsBoard,
    directory: Directory,
    runtime: Runtime,
}

impl std::fmt::Debug for Balancers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.instances.keys()).finish()
    }
}

impl Balancers {
    /// The balancers of `config`, fed by `view` (the mesh) and this node's own figures.
    pub fn new(
        config: &Config,
        identity: &NodeIdentity,
        view: Option<Arc<RwLock<ClusterView>>>,
        stats: StatsBoard,
        directory: Directory,
        runtime: Runtime,
    ) -> Balancers {
        let instances = config
            .balancers
            .iter()
            .map(|balancer| {
                let servers = balancer
                    .servers
                    .iter()
                    .map(|server| ServerPlan {
                        name: server.address.to_string(),
                        key: crate::mesh::node::peer_key(&server.address),
                        is_self: identity.is_self(&server.address),
                        max_bitrate_kbit: server.max_bitrate.map(|b| b.bits_per_second / 1000),
                        countries: server.countries.clone(),
                        countries_default: server.countries_default,
                    })
                    .collect();
                let mode = balancer
                    .mode
                    .and_then(|mode| Mode::parse(mode.name()))
                    .unwrap_or(Mode::Bitrate);
                let instance = Instance {
                    mode,
                    servers,
                    pending: Mutex::default(),
                    decisions: Mutex::default(),
                };
                (balancer.name.clone(), instance)
            })
            .collect();
        Balancers {
            instances: Arc::new(instances),
            view,
            stats,
            directory,
            runtime,
        }
    }

    /// Routes a request for `path` (`/NAME/STREAM/...`) with `query`.
    pub fn route(&self, post: bool, path: &str, query: Option<&str>) -> Routed {
        let trimmed = path.trim_start_matches('/');
        let Some((name, rest)) = trimmed.split_once('/') else {
            return Routed::Pass;
        };
        let Some(instance) = self.instances.get(name) else {
            return Routed::Pass;
        };
        let stream_path = format!("/{rest}");
        let stream = rest.split('/').next().unwrap_or_default().to_string();
        let now_ms = self.runtime.wall_clock_ms();
        let (servers, versions, urls) = self.servers(instance, &stream, now_ms);
        let mut pending = instance.pending.lock().unwrap_or_else(|p| p.into_inner());
        // A new report from a server supersedes the redirects counted against it.
        pending.retain(|name, (version, _)| versions.get(name) == Some(version));
        let counts: BTreeMap<String, u64> = pending
            .iter()
            .map(|(name, (_, count))| (name.clone(), *count))
            .collect();
        let outcome = choose(
            &servers,
            instance.mode,
            None,
            &counts,
            self.runtime.random_u64(),
        );
        let routed = match outcome {
            Err(why) => {
                tracing::warn!(balancer = %name, %stream, reason = ?why, "no server can take the viewer");
                Routed::Unavailable(why)
            }
            Ok(chosen) => {
                let server = &servers[chosen];
                let entry = pending
                    .entry(server.name.clone())
                    .or_insert((versions.get(&server.name).copied().unwrap_or_default(), 0));
                entry.1 += 1;
                match &urls[chosen] {
                    None => Routed::Local(stream_path.clone()),
                    Some(base) => {
                        let location = match query {
                            Some(query) if !query.is_empty() => {
                                format!("{base}{stream_path}?{query}")
                            }
                            _ => format!("{base}{stream_path}"),
                        };
                        Routed::Redirect(if post { 307 } else { 302 }, location)
                    }
                }
            }
        };
        drop(pending);
        let outcome = match &routed {
            Routed::Local(_) => "this node".to_string(),
            Routed::Redirect(_, location) => location.clone(),
            Routed::Unavailable(why) => format!("{why:?}"),
            Routed::Pass => String::new(),
        };
        let mut decisions = instance.decisions.lock().unwrap_or_else(|p| p.into_inner());
        if decisions.len() == RECENT_DECISIONS {
            decisions.pop_front();
        }
        decisions.push_back(Decision {
            at_ms: now_ms,
            stream,
            outcome,
        });
        routed
    }

    /// The servers of `instance` with their load now, the state version each figure
    /// comes from, and where to send viewers (`None`: this node).
    fn servers(&self, instance: &Instance, stream: &str, now_ms: u64) -> ServerSnapshot {
        let view = self
            .view
            .as_ref()
            .map(|view| view.read().unwrap_or_else(|p| p.into_inner()));
        let mut servers = Vec::with_capacity(instance.servers.len());
        let mut versions = BTreeMap::new();
        let mut urls = Vec::with_capacity(instance.servers.len());
        for plan in &instance.servers {
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
                has_stream: false,
            };
            if plan.is_self {
                let own = self.stats.snapshot();
                server.up = true;
                server.clients = own.total_clients;
                server.output_kbit = own.output_kbit;
                server.online_streams = own.online_streams;
                server.total_bandwidth_kbit = own.total_bandwidth / 1000;
                server.has_stream = self
                    .directory
                    .get(stream)
                    .is_some_and(|live| live.is_alive(now_ms, ALIVE_WITHIN_MS));
                // Our own figures refresh with the stats sampler: its counter is the version.
                let sampled = own.uptime;
                versions.insert(plan.name.clone(), (0, sampled));
                urls.push(None);
            } else {
                let record = view.as_ref().and_then(|view| {
                    view.peers(now_ms)
                        .find(|(peer, _)| peer.name == plan.key)
                        .map(|(peer, state)| (peer.clone(), state))
                });
                match record {
                    Some((peer, state)) => {
                        server.up = state == PeerState::Alive;
                        server.clients = peer.load.total_clients;
                        server.output_kbit = peer.load.output_kbit;
                        server.online_streams = peer.load.online_streams;
                        server.total_bandwidth_kbit = peer.load.total_bandwidth / 1000;
                        server.has_stream = peer
                            .streams
                            .get(stream)
                            .is_some_and(|s| s.alive || s.ondemand);
                        versions.insert(plan.name.clone(), (peer.incarnation, peer.version));
                        let base = if peer.public_url.is_empty() {
                            format!("http://{}", peer.name)
                        } else {
                            peer.public_url.trim_end_matches('/').to_string()
                        };
                        urls.push(Some(base));
                    }
                    None => urls.push(Some(format!("http://{}", plan.key))),
                }
            }
            servers.push(server);
        }
        (servers, versions, urls)
    }

    /// A balancer's servers with their state and metric, and its recent decisions.
    pub fn report(&self, name: &str) -> Option<serde_json::Value> {
        let instance = self.instances.get(name)?;
        let now_ms = self.runtime.wall_clock_ms();
        let (servers, _, urls) = self.servers(instance, "", now_ms);
        let pending = instance.pending.lock().unwrap_or_else(|p| p.into_inner());
        let rows: Vec<serde_json::Value> = servers
            .iter()
            .zip(&urls)
            .map(|(server, url)| {
                let sent = pending.get(&server.name).map_or(0, |(_, count)| *count);
                serde_json::json!({
                    "server": server.name,
                    "state": if server.up { "up" } else { "down" },
                    "url": url.clone().unwrap_or_else(|| "this node".into()),
                    "clients": server.clients,
                    "output_kbit": server.output_kbit,
                    "online_streams": server.online_streams,
                    "max_bitrate_kbit": server.max_bitrate_kbit,
                    "countries": server.countries,
                    "countries_default": server.countries_default,
                    "redirects_since_report": sent,
                    "metric": server.metric(instance.mode, sent),
                })
            })
            .collect();
        drop(pending);
        let decisions: Vec<Decision> = instance
            .decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        Some(serde_json::json!({
            "name": name,
            "mode": instance.mode,
            "servers": rows,
            "recent_decisions": decisions,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use flotilla_actors::mesh::view::{PeerLoad, PeerUpdate};

    const CONFIG: &str = "http 8080;
        balancer lb { mode clients; server 127.0.0.1:8080; server b.lan:8080; server c.lan:8080; }
        balancer far { server c.lan:8080 max_bitrate=10M; }";

    fn load(clients: u64, output_kbit: u64) -> PeerLoad {
        PeerLoad {
            total_clients: clients,
            output_kbit,
            ..PeerLoad::default()
        }
    }

    fn report(
        view: &Arc<RwLock<ClusterView>>,
        peer: &str,
        version: u64,
        load: PeerLoad,
        now_ms: u64,
    ) {
        view.write().unwrap().apply(
            peer,
            PeerUpdate {
                hostname: peer.split(':').next().unwrap().into(),
                public_url: format!("http://{peer}"),
                incarnation: 1,
                version,
                load,
                full: true,
                upserts: vec![],
                removals: vec![],
            },
            now_ms,
        );
    }

    fn balancers(view: Arc<RwLock<ClusterView>>, runtime: &Runtime) -> Balancers {
        let config = load_str("t", CONFIG).unwrap().config;
        let identity = NodeIdentity::resolve(&config, Some("a"), None);
        let directory = Directory::default();
        let stats = crate::stats::start(runtime, directory.clone(), "a".into(), 0);
        Balancers::new(
            &config,
            &identity,
            Some(view),
            stats,
            directory,
            runtime.clone(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn viewers_go_to_the_least_loaded_server_with_the_query_kept() {
        let runtime = Runtime::deterministic(7, 1_000_000);
        let view: Arc<RwLock<ClusterView>> = Arc::default();
        for peer in ["b.lan:8080", "c.lan:8080"] {
            view.write().unwrap().add_peer(peer, "", 1_000, 3_000);
        }
        let now_ms = runtime.wall_clock_ms();
        // This node has no viewers either, but b and c report some: this node is chosen.
        report(&view, "b.lan:8080", 1, load(5, 10_000), now_ms);
        report(&view, "c.lan:8080", 1, load(9, 10_000), now_ms);
        let lb = balancers(view.clone(), &runtime);
        assert_eq!(
            lb.route(false, "/lb/news/index.m3u8", Some("token=x")),
            Routed::Local("/news/index.m3u8".into())
        );
        assert_eq!(lb.route(false, "/news/index.m3u8", None), Routed::Pass);
        // Redirects since the last report count: after five to this node, b (5) ties, and
        // further ones spread between this node and b; c (9) waits until they pass 9.
        let mut to_b = 0;
        for _ in 0..8 {
            match lb.route(false, "/lb/news/index.m3u8", Some("token=x")) {
                Routed::Redirect(302, location) => {
                    assert_eq!(location, "http://b.lan:8080/news/index.m3u8?token=x");
                    to_b += 1;
                }
                Routed::Local(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(to_b >= 2, "a burst spreads: {to_b} to b");
        // WHIP/WHEP publish balancing answers 307.
        report(&view, "b.lan:8080", 2, load(0, 0), now_ms);
        report(&view, "c.lan:8080", 2, load(0, 0), now_ms);
        let mut saw_307 = false;
        for _ in 0..20 {
            if let Routed::Redirect(status, _) = lb.route(true, "/lb/news/whip", None) {
                assert_eq!(status, 307);
                saw_307 = true;
            }
        }
        assert!(saw_307);
        let api = lb.report("lb").unwrap();
        assert_eq!(api["servers"].as_array().unwrap().len(), 3);
        assert_eq!(api["recent_decisions"].as_array().unwrap().len(), 29);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_or_full_server_is_never_chosen_and_none_means_503() {
        let runtime = Runtime::deterministic(7, 1_000_000);
        let view: Arc<RwLock<ClusterView>> = Arc::default();
        view.write()
            .unwrap()
            .add_peer("c.lan:8080", "", 1_000, 3_000);
        let lb = balancers(view.clone(), &runtime);
        assert_eq!(
            lb.route(false, "/far/news/mpegts", None),
            Routed::Unavailable(NoServer::AllDown),
            "c never heard from"
        );
        let now_ms = runtime.wall_clock_ms();
        report(&view, "c.lan:8080", 1, load(3, 10_000), now_ms);
        assert_eq!(
            lb.route(false, "/far/news/mpegts", None),
            Routed::Unavailable(NoServer::AllFull),
            "c is at its max_bitrate (10 Mbit/s)"
        );
        report(&view, "c.lan:8080", 2, load(3, 5_000), now_ms);
        assert!(matches!(
            lb.route(false, "/far/news/mpegts", None),
            Routed::Redirect(302, _)
        ));
        // c goes stale: no longer chosen.
        tokio::time::advance(std::time::Duration::from_secs(4)).await;
        assert_eq!(
            lb.route(false, "/far/news/mpegts", None),
            Routed::Unavailable(NoServer::AllDown)
        );
    }
}
