//! Checks that need the whole configuration: references between objects and combinations
//! that parse but cannot work. They run after every file and fragment has been read.

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
}

fn names_node(candidate: &HostPort, node: &HostPort) -> bool {
    candidate.host.eq_ignore_ascii_case(&node.host)
        && (candidate.port.is_none() || node.port.is_none() || candidate.port == node.port)
}

/// `capture_at=HOST` must name a node of the cluster: a peer, or this node's own name.
fn check_capture_at(config: &Config, reader: &mut Reader, runtime_hostname: Option<&str>) {
    let own_names: Vec<HostPort> = config
        .hostname
        .iter()
        .map(String::as_str)
        .chain(runtime_hostname)
        .map(|host| HostPort {
            host: host.to_ascii_lowercase(),
            port: None,
        })
        .collect();
    let refs = std::mem::take(&mut reader.capture_refs);
    for (node, span) in &refs {
        let known = config
            .peers
            .iter()
            .any(|peer| names_node(node, &peer.address))
            || own_names.iter().any(|own| names_node(node, own));
        if !known {
            let peers: Vec<String> = config.peers.iter().map(|p| p.address.to_string()).collect();
            let diagnostic = Diagnostic::error(
                *span,
                format!("capture_at names `{node}`, which is no known node"),
            );
            let diagnostic = if peers.is_empty() {
                diagnostic.help("declare every node of the cluster with `peer HOST[:PORT];` (or `hostname` for this one)")
            } else {
                diagnostic.expected(format!("one of the peers: {}", peers.join(", ")))
            };
            reader.diagnostics.push(diagnostic);
        }
    }
    reader.capture_refs = refs;
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
