//! Balancers on the request path: `/NAME/STREAM/<rest>` is answered with a redirect to
//! the least loaded server of balancer NAME (302; 307 for a WHIP/WHEP `POST`), served
//! here when the choice is this node, or refused with 503 and `Retry-After` when no server
//! can take the viewer.
//!
//! The decision is `flotilla_cluster::balancer::choose` (pure). It runs on the load table
//! the balancer's actor (node/balancers/NAME) published last — the mesh's reports and
//! this node's own figures, see [`load`] — plus the redirects issued since each server's
//! last report and the viewer's country (GeoIP, when a database is configured and the
//! balancer lists countries). A request never waits on the actor: when its table is not
//! fresh (the actor is restarting) the request reads the load itself.

pub mod load;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use flotilla_cluster::balancer::choose::{Geo, Mode, NoServer, choose};
use flotilla_cluster::balancer::{BalancerBoard, BalancerIo, LoadTable, StateVersion};
use flotilla_otp::rt::Runtime;
use serde::Serialize;

use crate::config::Config;
use crate::config::identity::NodeIdentity;
use crate::geoip::{Country, GeoIp};
use crate::live::Live;
pub use load::NodeBalancerIo;

/// Decisions kept per balancer for the API (the most recent ones).
pub const RECENT_DECISIONS: usize = 32;
/// Servers per balancer whose pending redirects are counted on the stack; servers past
/// it (an unusual config) are judged on their reports alone.
const MAX_COUNTED_SERVERS: usize = 64;
/// `Retry-After` of a 503 when every server is down or full, seconds: about one
/// exchange period, after which the mesh may know better.
pub const RETRY_AFTER_SECONDS: u64 = 3;

/// One decision, for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Decision {
    /// Unix ms.
    pub at_ms: u64,
    /// The stream asked for.
    pub stream: String,
    /// The viewer's country, when GeoIP was consulted and knew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Country>,
    /// The server chosen, or why none.
    pub outcome: String,
}

struct Instance {
    mode: Mode,
    /// Some server lists countries: GeoIP is consulted (when a database is loaded).
    by_country: bool,
    /// What requests leave behind; one lock per request.
    ledger: Mutex<Ledger>,
    /// Answers since start, by outcome ([`OUTCOMES`] order), for the metrics.
    outcomes: [std::sync::atomic::AtomicU64; 4],
}

impl Instance {
    fn of(balancer: &crate::config::model::Balancer) -> Instance {
        Instance {
            mode: balancer
                .mode
                .and_then(|mode| Mode::parse(mode.name()))
                .unwrap_or(Mode::Bitrate),
            by_country: balancer.routes_by_country(),
            ledger: Mutex::default(),
            outcomes: Default::default(),
        }
    }
}

/// The outcomes counted per balancer: a redirect, served here, 503 with every server
/// down, 503 with every server full.
pub const OUTCOMES: [&str; 4] = ["redirect", "local", "all_down", "all_full"];

fn outcome_index(routed: &Routed) -> Option<usize> {
    match routed {
        Routed::Redirect(..) => Some(0),
        Routed::Local(_) => Some(1),
        Routed::Unavailable(NoServer::AllDown) => Some(2),
        Routed::Unavailable(NoServer::AllFull) => Some(3),
        Routed::Pass => None,
    }
}

/// A balancer's memory of its own redirects.
#[derive(Default)]
struct Ledger {
    /// Per server (config order): the state version its count belongs to, and the
    /// redirects sent there since.
    pending: Vec<(StateVersion, u64)>,
    /// The most recent decisions, oldest first (at most [`RECENT_DECISIONS`]).
    decisions: VecDeque<Decision>,
}

impl Ledger {
    /// The redirects counted against each server of a table with these `versions`: a
    /// new report from a server supersedes the redirects counted against it.
    fn pending_counts(&mut self, versions: &[StateVersion]) -> [u64; MAX_COUNTED_SERVERS] {
        self.pending.resize(versions.len(), ((0, 0), 0));
        let mut counts = [0u64; MAX_COUNTED_SERVERS];
        for (i, (version, count)) in self.pending.iter_mut().enumerate() {
            if *version != versions[i] {
                *version = versions[i];
                *count = 0;
            }
            if let Some(slot) = counts.get_mut(i) {
                *slot = *count;
            }
        }
        counts
    }

    /// Remembers a decision, in the buffers of the oldest one once the list is full.
    fn record(&mut self, at_ms: u64, stream: &str, country: Option<Country>, routed: &Routed) {
        let mut decision = if self.decisions.len() >= RECENT_DECISIONS {
            self.decisions.pop_front().unwrap_or_default()
        } else {
            Decision::default()
        };
        decision.at_ms = at_ms;
        decision.stream.clear();
        decision.stream.push_str(stream);
        decision.country = country;
        decision.outcome.clear();
        match routed {
            Routed::Local(_) => decision.outcome.push_str("this node"),
            Routed::Redirect(_, location) => decision.outcome.push_str(location),
            Routed::Unavailable(why) => {
                use std::fmt::Write;
                let _ = write!(decision.outcome, "{why:?}");
            }
            Routed::Pass => {}
        }
        self.decisions.push_back(decision);
    }
}

/// A request as a balancer needs it.
#[derive(Debug, Clone, Copy)]
pub struct BalancerRequest<'a> {
    /// A `POST` (WHIP/WHEP publish or play): answered 307 so the body is sent again.
    pub post: bool,
    /// `/NAME/STREAM/...`.
    pub path: &'a str,
    /// The query string, kept in the redirect.
    pub query: Option<&'a str>,
    /// The client's address (after trusted proxies), for GeoIP.
    pub client: Option<IpAddr>,
    /// Set when the viewer came to this node's own TLS listener on this port: a server's
    /// `http://` URL is answered as `https://` at this port (nodes share one config, so
    /// their https port is this one), never downgrading the viewer to plain HTTP.
    pub tls_port: Option<u16>,
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
    /// By name: replaced by a reload (an unchanged balancer keeps its instance).
    instances: Live<BTreeMap<String, Arc<Instance>>>,
    io: Arc<NodeBalancerIo>,
    board: BalancerBoard,
    geoip: Option<Arc<GeoIp>>,
    runtime: Runtime,
}

impl std::fmt::Debug for Balancers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.instances.get().keys()).finish()
    }
}

impl Balancers {
    /// The balancers of `config`: load through `io`, tables from `board` (where the
    /// balancer actors publish), countries from `geoip`.
    pub fn new(
        config: &Config,
        io: Arc<NodeBalancerIo>,
        board: BalancerBoard,
        geoip: Option<Arc<GeoIp>>,
        runtime: Runtime,
    ) -> Balancers {
        let instances = config
            .balancers
            .iter()
            .map(|balancer| (balancer.name.clone(), Arc::new(Instance::of(balancer))))
            .collect();
        Balancers {
            instances: Live::new(instances),
            io,
            board,
            geoip,
            runtime,
        }
    }

    /// The newest load table of balancer `name`: the actor's while fresh, else read now.
    fn table(&self, name: &str, now_ms: u64) -> Option<Arc<LoadTable>> {
        match self.board.table(name) {
            Some(table) if table.fresh(now_ms) => Some(table),
            _ => self.io.load(name, now_ms).map(Arc::new),
        }
    }

    /// Monotonic now, from the node's runtime.
    pub fn now(&self) -> tokio::time::Instant {
        self.runtime.now()
    }

    /// Unix ms now, from the node's runtime.
    pub fn wall_clock_ms(&self) -> u64 {
        self.runtime.wall_clock_ms()
    }

    /// Takes the balancers of a reloaded config: those whose config is unchanged keep
    /// their counts and recent decisions, the others start anew.
    pub fn reconfigure(&self, old: &Config, new: &Config, identity: &NodeIdentity) {
        let running = self.instances.get();
        let instances = new
            .balancers
            .iter()
            .map(|balancer| {
                let unchanged = old.balancers.iter().any(|before| before == balancer);
                let instance = match running.get(&balancer.name) {
                    Some(instance) if unchanged => instance.clone(),
                    _ => Arc::new(Instance::of(balancer)),
                };
                (balancer.name.clone(), instance)
            })
            .collect();
        self.io.reconfigure(new, identity);
        self.instances.replace(instances);
    }

    /// How balancers read the servers' load (the actors a reload starts share it).
    pub fn io(&self) -> Arc<dyn BalancerIo> {
        self.io.clone()
    }

    /// Where balancer actors publish their tables.
    pub fn board(&self) -> BalancerBoard {
        self.board.clone()
    }

    /// Whether the node has no balancer.
    pub fn is_empty(&self) -> bool {
        self.instances.get().is_empty()
    }

    /// Whether `path` names a balancer (`/NAME/...`): cheap, no allocation.
    pub fn claims(&self, path: &str) -> bool {
        path.trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(name, _)| self.instances.get().contains_key(name))
    }

    /// Routes one request. On the path of every redirect, so it allocates only the
    /// location it answers with: the stream is a slice of the path, the choice works on
    /// the published table in place, and a decision reuses the buffers of the one it
    /// pushes out of the recent list.
    pub fn route(&self, request: BalancerRequest<'_>) -> Routed {
        let trimmed = request.path.trim_start_matches('/');
        let Some((name, rest)) = trimmed.split_once('/') else {
            return Routed::Pass;
        };
        let instances = self.instances.get();
        let Some(instance) = instances.get(name) else {
            return Routed::Pass;
        };
        // `/rest`: the path after `/NAME` (`rest` follows a `/` of the path).
        let stream_path = &request.path[request.path.len() - rest.len() - 1..];
        let stream = rest.split('/').next().unwrap_or_default();
        let now_ms = self.runtime.wall_clock_ms();
        let Some(table) = self.table(name, now_ms) else {
            return Routed::Pass;
        };
        let country: Option<Country> = match (&self.geoip, request.client) {
            (Some(geoip), Some(client)) if instance.by_country => geoip.country(client),
            _ => None,
        };
        let geo = match (&country, self.geoip.is_some() && instance.by_country) {
            (Some(country), _) => Geo::Country(country.as_str()),
            (None, true) => Geo::Unknown,
            (None, false) => Geo::Off,
        };
        let mut ledger = instance.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let counts = ledger.pending_counts(&table.versions);
        let outcome = choose(
            &table.servers,
            instance.mode,
            geo,
            &counts[..table.versions.len().min(MAX_COUNTED_SERVERS)],
            |index| self.io.carries(name, index, stream, now_ms),
            self.runtime.random_u64(),
        );
        let routed = match outcome {
            Err(why) => {
                tracing::warn!(balancer = %name, %stream, reason = ?why, "no server can take the viewer");
                Routed::Unavailable(why)
            }
            Ok(chosen) => {
                ledger.pending[chosen].1 += 1;
                match &table.urls[chosen] {
                    None => Routed::Local(stream_path.to_string()),
                    Some(base) => {
                        let secured = request.tls_port.and_then(|port| over_tls(base, port));
                        let base = secured.as_deref().unwrap_or(base);
                        let query = request.query.filter(|query| !query.is_empty());
                        let mut location = String::with_capacity(
                            base.len() + stream_path.len() + query.map_or(0, |q| q.len() + 1),
                        );
                        location.push_str(base);
                        location.push_str(stream_path);
                        if let Some(query) = query {
                            location.push('?');
                            location.push_str(query);
                        }
                        Routed::Redirect(if request.post { 307 } else { 302 }, location)
                    }
                }
            }
        };
        ledger.record(now_ms, stream, country, &routed);
        if let Some(index) = outcome_index(&routed) {
            instance.outcomes[index].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        routed
    }

    /// Every balancer's answers since start by outcome, for the metrics.
    pub fn decision_counts(&self) -> Vec<(String, [(&'static str, u64); 4])> {
        self.instances
            .get()
            .iter()
            .map(|(name, instance)| {
                let counts = std::array::from_fn(|i| {
                    (
                        OUTCOMES[i],
                        instance.outcomes[i].load(std::sync::atomic::Ordering::Relaxed),
                    )
                });
                (name.clone(), counts)
            })
            .collect()
    }

    /// A balancer's servers with their state and metric, and its recent decisions.
    pub fn report(&self, name: &str) -> Option<serde_json::Value> {
        let instances = self.instances.get();
        let instance = instances.get(name)?;
        let now_ms = self.runtime.wall_clock_ms();
        let table = self.table(name, now_ms)?;
        let ledger = instance.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let rows: Vec<serde_json::Value> = table
            .servers
            .iter()
            .zip(&table.urls)
            .enumerate()
            .map(|(i, (server, url))| {
                let sent = ledger
                    .pending
                    .get(i)
                    .filter(|(version, _)| *version == table.versions[i])
                    .map_or(0, |(_, count)| *count);
                serde_json::json!({
                    "server": &*server.name,
                    "state": if server.up { "up" } else { "down" },
                    "url": url.clone().unwrap_or_else(|| "this node".into()),
                    "clients": server.clients,
                    "output_kbit": server.output_kbit,
                    "online_streams": server.online_streams,
                    "max_bitrate_kbit": server.max_bitrate_kbit,
                    "countries": &*server.countries,
                    "countries_default": server.countries_default,
                    "redirects_since_report": sent,
                    "metric": server.metric(instance.mode, sent),
                })
            })
            .collect();
        let decisions: Vec<Decision> = ledger.decisions.iter().cloned().collect();
        drop(ledger);
        Some(serde_json::json!({
            "name": name,
            "mode": instance.mode,
            "geoip": instance.by_country && self.geoip.is_some(),
            "table_age_ms": now_ms.saturating_sub(table.taken_ms),
            "servers": rows,
            "recent_decisions": decisions,
        }))
    }
}

/// `base` (`http://HOST[:PORT][/PATH]`) as `https://HOST:tls_port[/PATH]`; `None` when it
/// is not a plain-http URL (an https public URL is kept as configured).
fn over_tls(base: &str, tls_port: u16) -> Option<String> {
    let rest = base.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Some(format!(
        "https://{}{path}",
        crate::http::transport::with_port(authority, tls_port)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::identity::NodeIdentity;
    use crate::config::load_str;
    use crate::media::directory::Directory;
    use flotilla_cluster::mesh::view::{ClusterView, PeerLoad, PeerUpdate};
    use std::sync::RwLock;

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
                id: peer.into(),
                hostname: peer.split(':').next().unwrap().into(),
                public_url: format!("http://{peer}"),
                rtmp_url: String::new(),
                incarnation: 1,
                started_ms: 1,
                version,
                load,
                uptime_ms: 0,
                returns_ms: Vec::new(),
                your_restarts_ms: Vec::new(),
                full: true,
                upserts: vec![],
                removals: vec![],
                called_by_peer: false,
            },
            now_ms,
        );
    }

    fn balancers_of(
        text: &str,
        view: Arc<RwLock<ClusterView>>,
        geoip: Option<Arc<GeoIp>>,
        runtime: &Runtime,
    ) -> Balancers {
        let config = load_str("t", text).unwrap().config;
        let identity = NodeIdentity::resolve(&config, Some("a"), None);
        let directory = Directory::default();
        let stats = crate::stats::start(runtime, directory.clone(), "a".into(), 0);
        let io = NodeBalancerIo::new(&config, &identity, Some(view), stats, directory);
        Balancers::new(
            &config,
            Arc::new(io),
            BalancerBoard::default(),
            geoip,
            runtime.clone(),
        )
    }

    fn balancers(view: Arc<RwLock<ClusterView>>, runtime: &Runtime) -> Balancers {
        balancers_of(CONFIG, view, None, runtime)
    }

    fn get<'a>(path: &'a str, query: Option<&'a str>) -> BalancerRequest<'a> {
        BalancerRequest {
            post: false,
            path,
            query,
            client: None,
            tls_port: None,
        }
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
            lb.route(get("/lb/news/index.m3u8", Some("token=x"))),
            Routed::Local("/news/index.m3u8".into())
        );
        assert_eq!(lb.route(get("/news/index.m3u8", None)), Routed::Pass);
        // Redirects since the last report count: after five to this node, b (5) ties, and
        // further ones spread between this node and b; c (9) waits until they pass 9.
        let mut to_b = 0;
        for round in 0..8 {
            // A viewer that came over this node's https listener stays on https.
            let tls_port = (round % 2 == 1).then_some(8443);
            match lb.route(BalancerRequest {
                tls_port,
                ..get("/lb/news/index.m3u8", Some("token=x"))
            }) {
                Routed::Redirect(302, location) => {
                    let expected = match tls_port {
                        Some(_) => "https://b.lan:8443/news/index.m3u8?token=x",
                        None => "http://b.lan:8080/news/index.m3u8?token=x",
                    };
                    assert_eq!(location, expected);
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
            if let Routed::Redirect(status, _) = lb.route(BalancerRequest {
                post: true,
                ..get("/lb/news/whip", None)
            }) {
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
            lb.route(get("/far/news/mpegts", None)),
            Routed::Unavailable(NoServer::AllDown),
            "c never heard from"
        );
        let now_ms = runtime.wall_clock_ms();
        report(&view, "c.lan:8080", 1, load(3, 10_000), now_ms);
        assert_eq!(
            lb.route(get("/far/news/mpegts", None)),
            Routed::Unavailable(NoServer::AllFull),
            "c is at its max_bitrate (10 Mbit/s)"
        );
        report(&view, "c.lan:8080", 2, load(3, 5_000), now_ms);
        assert!(matches!(
            lb.route(get("/far/news/mpegts", None)),
            Routed::Redirect(302, _)
        ));
        // c goes stale: no longer chosen.
        tokio::time::advance(std::time::Duration::from_secs(4)).await;
        assert_eq!(
            lb.route(get("/far/news/mpegts", None)),
            Routed::Unavailable(NoServer::AllDown)
        );
    }

    /// Flussonic's documented GeoIP example through the request path: p1 RU;
    /// p2 RU,CN; p3 CN + default; p4 default.
    #[tokio::test(start_paused = true)]
    async fn viewers_are_routed_by_the_country_of_their_address() {
        let geoip = Arc::new(crate::geoip::test_database(&[
            ("192.0.2.0/24", "RU"),
            ("198.51.100.0/24", "CN"),
            ("203.0.113.0/24", "BR"),
        ]));
        let runtime = Runtime::deterministic(11, 1_000_000);
        let view: Arc<RwLock<ClusterView>> = Arc::default();
        let peers = ["p1:80", "p2:80", "p3:80", "p4:80"];
        for peer in peers {
            view.write().unwrap().add_peer(peer, "", 1_000, 3_000);
            report(&view, peer, 1, load(0, 0), runtime.wall_clock_ms());
        }
        let lb = balancers_of(
            "http 8080; balancer geo { mode clients;
                server p1:80 countries=RU; server p2:80 countries=RU,CN;
                server p3:80 countries=CN countries_default=true; server p4:80 countries_default=true; }",
            view,
            Some(geoip),
            &runtime,
        );
        for (client, allowed) in [
            ("198.51.100.7", ["p2", "p3"]),
            ("192.0.2.7", ["p1", "p2"]),
            ("203.0.113.7", ["p3", "p4"]),
            ("8.8.8.8", ["p3", "p4"]),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..40 {
                let request = BalancerRequest {
                    client: Some(client.parse().unwrap()),
                    tls_port: None,
                    ..get("/geo/news/index.m3u8", None)
                };
                match lb.route(request) {
                    Routed::Redirect(302, location) => {
                        let host = location
                            .trim_start_matches("http://")
                            .split(':')
                            .next()
                            .unwrap()
                            .to_string();
                        seen.insert(host);
                    }
                    other => panic!("{other:?}"),
                }
            }
            let expected: std::collections::BTreeSet<String> =
                allowed.iter().map(|s| s.to_string()).collect();
            assert_eq!(seen, expected, "viewers from {client}");
        }
        let api = lb.report("geo").unwrap();
        assert_eq!(api["geoip"], true);
        assert_eq!(
            api["recent_decisions"][31]["country"],
            serde_json::Value::Null,
            "8.8.8.8 is unknown"
        );
        assert_eq!(
            api["recent_decisions"][0]["country"],
            serde_json::Value::Null
        );
        lb.route(BalancerRequest {
            client: Some("203.0.113.1".parse().unwrap()),
            tls_port: None,
            ..get("/geo/news/index.m3u8", None)
        });
        assert_eq!(
            lb.report("geo").unwrap()["recent_decisions"][31]["country"],
            "BR"
        );
    }
}
