//! Node identity: which node of the cluster this process is.
//!
//! Flussonic clusters run one config file on every node, listing every node as a `peer`.
//! So a node must recognise itself in that list and skip that entry. It is itself when the
//! peer names its hostname, or an address it listens on (by IP and port, where a wildcard
//! listener owns every loopback address and the port decides).
//!
//! A node's identity in the cluster is `host:port` ([`NodeIdentity::id`]), never a bare
//! host: several nodes may run on one machine, differ only by port, and share a hostname.
//! It is the key of the node's own `peer` entry — what every other node, reading the same
//! file, calls it — and `hostname:http_port` for a node the file does not list.

use std::net::IpAddr;

use super::model::{Config, HostPort, ListenAddr, Peer};

/// Environment variable that names the node (after `--hostname`, before `hostname NAME;`).
pub const HOSTNAME_ENV: &str = "FLOTILLA_HOSTNAME";

/// Longest host name accepted (RFC 1035's limit for a full domain name).
pub const MAX_HOSTNAME_BYTES: usize = 253;

/// Who this node is, resolved once at start-up.
/// Port of a node key whose address names none (Flussonic's default HTTP port).
pub const DEFAULT_NODE_PORT: u16 = 80;

/// The canonical key of the node at `address`: `host:port`, the host lowercased, the
/// port explicit. Every node names every node (itself included) by this key.
pub fn node_key(address: &HostPort) -> String {
    HostPort {
        host: address.host.to_ascii_lowercase(),
        port: Some(address.port.unwrap_or(DEFAULT_NODE_PORT)),
    }
    .to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node's name for people (logs, the API's `hostname`): may be shared by
    /// several nodes of one machine.
    pub hostname: String,
    /// The node's identity in the cluster (`host:port`, see the module header): unique
    /// per node, used wherever nodes are told apart.
    pub id: String,
    /// Every address the node listens on for HTTP (the ports peers name).
    pub listens: Vec<ListenAddr>,
    pub cluster_port: Option<u16>,
}

impl NodeIdentity {
    /// Resolves the node name: `--hostname` wins, then `FLOTILLA_HOSTNAME`, then the
    /// config's `hostname`, then the machine's host name.
    pub fn resolve(
        config: &Config,
        cli_hostname: Option<&str>,
        env_hostname: Option<&str>,
    ) -> NodeIdentity {
        let hostname = cli_hostname
            .or(env_hostname)
            .map(str::to_string)
            .or_else(|| config.hostname.clone())
            .unwrap_or_else(machine_hostname)
            .to_ascii_lowercase();
        let mut identity = NodeIdentity {
            id: String::new(),
            hostname,
            listens: config
                .http
                .iter()
                .chain(&config.https)
                .map(|l| l.listen)
                .collect(),
            cluster_port: config.cluster_port,
        };
        identity.id = match config.peers.iter().find(|p| identity.is_self(&p.address)) {
            Some(own) => node_key(&own.address),
            None => node_key(&HostPort {
                host: identity.hostname.clone(),
                port: config.http.first().map(|http| http.listen.port),
            }),
        };
        identity
    }

    /// The key of the node `address` designates: this node's [`id`](Self::id) when it
    /// is this node, else the key of the one `peer` entry on that host (and port, when
    /// `address` has one), else `address`'s own key (a bare host stays bare: it may be a
    /// peer's hostname). So `capture_at=b.lan` names the node listed as
    /// `peer b.lan:8081`.
    pub fn key_of(&self, config: &Config, address: &HostPort) -> String {
        if self.is_self(address) {
            return self.id.clone();
        }
        let mut listed = config.peers.iter().filter(|peer| {
            peer.address.host.eq_ignore_ascii_case(&address.host)
                && (address.port.is_none() || peer.address.port == address.port)
        });
        match (listed.next(), listed.next()) {
            (Some(peer), None) if self.is_self(&peer.address) => self.id.clone(),
            (Some(peer), None) => node_key(&peer.address),
            _ if address.port.is_some() => node_key(address),
            // A bare name the file does not list: a peer's hostname (an alias).
            _ => address.host.to_ascii_lowercase(),
        }
    }

    /// Whether `address` (a `peer` entry or a `capture_at`) designates this node.
    pub fn is_self(&self, address: &HostPort) -> bool {
        let port_matches = |port: Option<u16>| match port {
            None => true,
            Some(port) => {
                self.cluster_port == Some(port) || self.listens.iter().any(|l| l.port == port)
            }
        };
        if address.host.eq_ignore_ascii_case(&self.hostname) {
            return port_matches(address.port);
        }
        let host = match address.host.as_str() {
            "localhost" => "127.0.0.1",
            host => host,
        };
        let Ok(ip) = host.parse::<IpAddr>() else {
            return false;
        };
        let Some(port) = address.port else {
            return false;
        };
        self.listens.iter().any(|listen| {
            listen.port == port
                && match listen.ip {
                    Some(listen_ip) if !listen_ip.is_unspecified() => listen_ip == ip,
                    // A wildcard listener owns every address of the machine; without
                    // enumerating interfaces we know that for loopback and wildcard names.
                    _ => ip.is_loopback() || ip.is_unspecified(),
                }
        })
    }

    /// The configured peers minus this node itself.
    pub fn other_peers<'c>(&self, config: &'c Config) -> Vec<&'c Peer> {
        config
            .peers
            .iter()
            .filter(|p| !self.is_self(&p.address))
            .collect()
    }
}

/// The machine's host name (Linux: the kernel's), or `localhost` when it cannot be read.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty() && name.len() <= MAX_HOSTNAME_BYTES)
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn identity(text: &str, cli: Option<&str>) -> (NodeIdentity, Config) {
        let config = load_str("test.conf", text).unwrap().config;
        (NodeIdentity::resolve(&config, cli, None), config)
    }

    #[test]
    fn precedence_cli_then_env_then_config() {
        let config = load_str("t", "hostname from-config;").unwrap().config;
        assert_eq!(
            NodeIdentity::resolve(&config, Some("cli"), Some("env")).hostname,
            "cli"
        );
        assert_eq!(
            NodeIdentity::resolve(&config, None, Some("env")).hostname,
            "env"
        );
        assert_eq!(
            NodeIdentity::resolve(&config, None, None).hostname,
            "from-config"
        );
    }

    #[test]
    fn a_shared_file_skips_the_node_itself() {
        let shared = "http 8081; peer a.lan:8081; peer b.lan:8081; peer c.lan;";
        let (a, config) = identity(shared, Some("a.lan"));
        let others: Vec<String> = a
            .other_peers(&config)
            .iter()
            .map(|p| p.address.to_string())
            .collect();
        assert_eq!(others, vec!["b.lan:8081", "c.lan"]);
    }

    #[test]
    fn a_peer_on_another_port_of_the_same_host_is_another_node() {
        let (node, _) = identity("http 8081;", Some("box"));
        assert!(node.is_self(&HostPort {
            host: "box".into(),
            port: Some(8081)
        }));
        assert!(!node.is_self(&HostPort {
            host: "box".into(),
            port: Some(8082)
        }));
    }

    #[test]
    fn listen_addresses_identify_the_node() {
        let (node, _) = identity("http 127.0.0.2:8081; http 8090;", Some("n"));
        let at = |host: &str, port| HostPort {
            host: host.into(),
            port: Some(port),
        };
        assert!(node.is_self(&at("127.0.0.2", 8081)));
        assert!(
            !node.is_self(&at("127.0.0.3", 8081)),
            "bound to one address only"
        );
        assert!(
            node.is_self(&at("127.0.0.1", 8090)),
            "wildcard listener owns loopback"
        );
        assert!(
            !node.is_self(&at("10.1.1.1", 8090)),
            "cannot prove a LAN address is ours"
        );
        assert!(node.is_self(&at("localhost", 8090)));
        assert!(!node.is_self(&HostPort {
            host: "127.0.0.1".into(),
            port: None
        }));
    }

    #[test]
    fn nodes_of_one_machine_have_identities_that_differ_by_port() {
        let shared = "peer 127.0.0.1:8081; peer 127.0.0.1:8082; peer 127.0.0.1:8083;";
        let ids: Vec<String> = (1..=3)
            .map(|n| {
                let text = format!("{shared} http 127.0.0.1:808{n};");
                identity(&text, Some("box")).0.id
            })
            .collect();
        assert_eq!(ids, ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]);
        // Unlisted: its hostname and HTTP port; the host in lower case, the port explicit.
        assert_eq!(identity("http 8090;", Some("Box")).0.id, "box:8090");
        assert_eq!(identity("", Some("box")).0.id, "box:80");
    }

    #[test]
    fn capture_at_resolves_to_the_node_key_every_node_computes() {
        let shared = "peer box:8081; peer box:8082; peer cam.lan:9000;";
        let (a, config) = identity(&format!("{shared} http 8081;"), Some("box"));
        let (b, _) = identity(&format!("{shared} http 8082;"), Some("box"));
        let at = |host: &str, port| HostPort {
            host: host.into(),
            port,
        };
        for node in [&a, &b] {
            assert_eq!(node.key_of(&config, &at("box", Some(8082))), "box:8082");
            assert_eq!(node.key_of(&config, &at("BOX", Some(8081))), "box:8081");
            // The one peer on that host, by its key (port from the peer line).
            assert_eq!(node.key_of(&config, &at("cam.lan", None)), "cam.lan:9000");
            // Unlisted: an address keeps its port, a bare name stays a name (an alias).
            assert_eq!(node.key_of(&config, &at("x", Some(1))), "x:1");
            assert_eq!(node.key_of(&config, &at("Other", None)), "other");
        }
    }
}
