//! Checks that need the whole configuration: references between objects and combinations
//! that parse but cannot work. They run after every file and fragment has been read, and
//! each costs O(1) per reference whatever the number of objects (issue 30.10).

use std::collections::{HashMap, HashSet};

use super::diagnostic::Diagnostic;
use super::model::{BalancerMode, Config, HostPort};
use super::schema::Reader;

/// Cluster keys shorter than this draw a warning: the key is the only secret between the
/// nodes, and a short one can be guessed offline from a captured handshake.
pub const MIN_STRONG_CLUSTER_KEY_BYTES: usize = 16;

/// Runs every whole-config check, adding findings to `reader`.
/// `runtime_hostname` is the name the node will run under, when known (it may come from
/// `--hostname` or the environment rather than the file).
pub fn check(config: &Config, reader: &mut Reader, runtime_hostname: Option<&str>) {
    check_capture_at(config, reader, runtime_hostname);
    check_balancers(config, reader);
    check_cluster_key(config, reader);
    check_sources(config, reader);
    check_tls(config, reader);
    check_policies(config, reader);
    check_event_sinks(config, reader);
}

/// Every `event_sink` destination is one the node delivers to: `http(s)://`, `log://` or
/// `jsonlog://` (Lua scripts are refused here, not at start).
fn check_event_sinks(config: &Config, reader: &mut Reader) {
    for sink in &config.event_sinks {
        for url in &sink.urls {
            let usable = url.starts_with("log://")
                || url.starts_with("jsonlog://")
                || ((url.starts_with("http://") || url.starts_with("https://"))
                    && crate::events::webhook::WebhookUrl::parse(url).is_ok());
            if !usable {
                reader.diagnostics.push(
                    Diagnostic::global(format!(
                        "event_sink {}: `{url}` is not a destination this node delivers to",
                        sink.name
                    ))
                    .help("use http(s)://HOST[:PORT]/PATH, log://PATH or jsonlog://PATH (Lua scripts are not run)"),
                );
            }
        }
    }
}

/// Every `on_play`, `on_publish` and `auth` names a usable policy: an http:// URL or an
/// `auth://NAME` of an `auth_backend` block whose backends are http:// URLs.
fn check_policies(config: &Config, reader: &mut Reader) {
    let blocks = config
        .streams
        .iter()
        .map(|s| (format!("stream {}", s.name), &s.options))
        .chain(
            config
                .templates
                .iter()
                .map(|t| (format!("template {}", t.name), &t.options)),
        );
    for (block, options) in blocks {
        for (directive, value) in [
            ("on_play", &options.on_play),
            ("on_publish", &options.on_publish),
            ("auth", &options.auth),
        ] {
            let Some(value) = value else { continue };
            if let Err(error) = crate::auth::Authorizer::resolve(value, &config.auth_backends) {
                reader.diagnostics.push(
                    Diagnostic::global(format!("{block}: `{directive}`: {error}")).help(
                        "use http(s)://HOST[:PORT]/PATH or auth://NAME of an auth_backend block",
                    ),
                );
            }
        }
    }
}

/// `redirect_https` sends plain-HTTP clients to the first `https` listener: there must be
/// one, and an `https` listener cannot redirect to itself.
fn check_tls(config: &Config, reader: &mut Reader) {
    if config.https.iter().any(|l| l.redirect_https == Some(true)) {
        reader.diagnostics.push(
            Diagnostic::global(
                "`redirect_https` is set on an https listener: it would send clients to itself",
            )
            .help("set it on the plain `http` listeners"),
        );
    }
    if config.https.is_empty() && config.http.iter().any(|l| l.redirect_https == Some(true)) {
        reader.diagnostics.push(
            Diagnostic {
                severity: super::diagnostic::Severity::Warning,
                ..Diagnostic::global(
                    "`redirect_https` has no effect without an `https` listener to send clients to",
                )
            }
            .help("add `https 443;` (and `tls_certificate`/`tls_key`)"),
        );
    }
}

/// A `source` is reached over the mesh, which runs with the node's `cluster_key` on its
/// first `http` port; of the stream options a source block accepts, a restreamed stream
/// uses the ones about its relay (it keeps its origin's segments and media).
fn check_sources(config: &Config, reader: &mut Reader) {
    for (source, span) in config.sources.iter().zip(reader.source_spans.clone()) {
        if config.cluster_key.is_none() {
            reader.diagnostics.push(
                Diagnostic::error(span, "`source` needs a global `cluster_key`: the node reaches its sources over its mesh, which runs only with one")
                    .help("set `cluster_key` to the restreamed cluster's key (a `cluster_key` inside the source block overrides it for that source only)"),
            );
        }
        if config.http.is_empty() {
            reader.diagnostics.push(
                Diagnostic::error(
                    span,
                    "`source` needs an `http` listener: the mesh runs on its port",
                )
                .expected("`http PORT;`"),
            );
        }
        let relay_options = super::model::StreamOptions {
            clients_timeout: source.options.clients_timeout,
            source_timeout: source.options.source_timeout,
            ..Default::default()
        };
        if source.options != relay_options {
            reader.diagnostics.push(
                Diagnostic::warning(span, "in a `source` block only `clients_timeout` and `source_timeout` apply: a restreamed stream keeps its origin's segments and media, so its other stream options have no effect")
                    .help("set them on the stream in the origin's config"),
            );
        }
    }
}

/// Peers named in a "no known node" error: enough to spot the typo; the rest is counted.
pub const MAX_LISTED_PEERS: usize = 10;

/// The cluster's nodes by lower-case host, for `capture_at=` lookups in O(1) (a scan of
/// every peer per reference was quadratic in large configs, issue 30.10).
#[derive(Default)]
struct KnownNodes {
    /// Per host: whether an entry names it without a port (it then matches any port),
    /// and the ports the others give.
    hosts: HashMap<String, (bool, HashSet<u16>)>,
}

impl KnownNodes {
    fn add(&mut self, node: &HostPort) {
        let (any_port, ports) = self
            .hosts
            .entry(node.host.to_ascii_lowercase())
            .or_default();
        match node.port {
            None => *any_port = true,
            Some(port) => {
                ports.insert(port);
            }
        }
    }

    /// The ports of the several nodes a port-less `candidate` could name (a node's
    /// identity is `host:port`: nodes of one machine differ by port alone).
    fn ambiguous(&self, candidate: &HostPort) -> Option<Vec<u16>> {
        if candidate.port.is_some() {
            return None;
        }
        let (_, ports) = self.hosts.get(&candidate.host.to_ascii_lowercase())?;
        let mut ports: Vec<u16> = ports.iter().copied().collect();
        ports.sort_unstable();
        (ports.len() > 1).then_some(ports)
    }

    /// A host matches case-insensitively; a port matches when either side gives none.
    fn names(&self, candidate: &HostPort) -> bool {
        self.hosts
            .get(&candidate.host.to_ascii_lowercase())
            .is_some_and(|(any_port, ports)| {
                *any_port || candidate.port.is_none_or(|port| ports.contains(&port))
            })
    }
}

/// `capture_at=HOST` must name a node of the cluster: a peer, or this node's own name.
fn check_capture_at(config: &Config, reader: &mut Reader, runtime_hostname: Option<&str>) {
    let mut known = KnownNodes::default();
    for peer in &config.peers {
        known.add(&peer.address);
    }
    for own in config
        .hostname
        .iter()
        .map(String::as_str)
        .chain(runtime_hostname)
    {
        known.add(&HostPort {
            host: own.to_string(),
            port: None,
        });
    }
    let mut listed_peers = None;
    for (node, span) in &reader.capture_refs {
        if let Some(ports) = known.ambiguous(node) {
            let ports: Vec<String> = ports.iter().map(|port| format!("{node}:{port}")).collect();
            reader.diagnostics.push(
                Diagnostic::error(
                    *span,
                    format!(
                        "capture_at names `{node}`, which is {} nodes: {}",
                        ports.len(),
                        ports.join(", ")
                    ),
                )
                .help("add the port of the node meant: `capture_at=HOST:PORT`"),
            );
            continue;
        }
        if known.names(node) {
            continue;
        }
        let diagnostic = Diagnostic::error(
            *span,
            format!("capture_at names `{node}`, which is no known node"),
        );
        let diagnostic = if config.peers.is_empty() {
            diagnostic.help("declare every node of the cluster with `peer HOST[:PORT];` (or `hostname` for this one)")
        } else {
            let peers = listed_peers.get_or_insert_with(|| list_peers(config));
            diagnostic.expected(format!("one of the peers: {peers}"))
        };
        reader.diagnostics.push(diagnostic);
    }
}

/// The first [`MAX_LISTED_PEERS`] peers, and how many more there are.
fn list_peers(config: &Config) -> String {
    let mut listed: Vec<String> = config
        .peers
        .iter()
        .take(MAX_LISTED_PEERS)
        .map(|peer| peer.address.to_string())
        .collect();
    let more = config.peers.len().saturating_sub(MAX_LISTED_PEERS);
    if more > 0 {
        listed.push(format!("… ({more} more)"));
    }
    listed.join(", ")
}

fn check_balancers(config: &Config, reader: &mut Reader) {
    for (balancer, span) in config.balancers.iter().zip(reader.balancer_spans.clone()) {
        if balancer.servers.is_empty() {
            reader.diagnostics.push(
                Diagnostic::error(span, format!("balancer `{}` has no servers", balancer.name))
                    .expected("at least one `server HOST;` line"),
            );
        }
        let has_capacity = config.total_bandwidth.is_some()
            || balancer.servers.iter().any(|s| s.max_bitrate.is_some());
        if balancer.mode == Some(BalancerMode::Usage) && !has_capacity {
            reader.diagnostics.push(
                Diagnostic::error(span, format!("balancer `{}` uses mode usage without any capacity", balancer.name))
                    .help("usage is bitrate ÷ capacity: give servers `max_bitrate=…` or set `total_bandwidth` on the nodes"),
            );
        }
        let everyone_has_countries = !balancer.servers.is_empty()
            && balancer
                .servers
                .iter()
                .all(|s| !s.countries.is_empty() && !s.countries_default);
        if everyone_has_countries {
            reader.diagnostics.push(Diagnostic::warning(
                span,
                format!(
                    "balancer `{}`: no server has countries_default=true, so clients from unlisted countries go to any server",
                    balancer.name
                ),
            ));
        }
    }
}

fn check_cluster_key(config: &Config, reader: &mut Reader) {
    let Some(key) = &config.cluster_key else {
        return;
    };
    if key.0.len() < MIN_STRONG_CLUSTER_KEY_BYTES {
        let message = format!(
            "cluster_key is shorter than {MIN_STRONG_CLUSTER_KEY_BYTES} characters and could be guessed"
        );
        reader.diagnostics.push(
            match reader.cluster_key_span {
                Some(span) => Diagnostic::warning(span, message),
                None => Diagnostic {
                    severity: super::diagnostic::Severity::Warning,
                    ..Diagnostic::global(message)
                },
            }
            .help("`flotilla keygen` prints a strong random key"),
        );
    }
}
