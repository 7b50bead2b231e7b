//! Node identity: which node of the cluster this process is.
//!
//! Flussonic clusters run one config file on every node, listing every node as a `peer`.
//! So a node must recognise itself in that list and skip that entry. It is itself when the
//! peer names its hostname, or an address it listens on (by IP and port, where a wildcard
//! listener owns every loopback address and the port decides).

use std::net::IpAddr;

use super::model::{Config, HostPort, ListenAddr, Peer};

/// Environment variable that names the node (after `--hostname`, before `hostname NAME;`).
pub const HOSTNAME_ENV: &str = "FLOTILLA_HOSTNAME";

/// Longest host name accepted (RFC 1035's limit for a full domain name).
pub const MAX_HOSTNAME_BYTES: usize = 253;

/// Who this node is, resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub hostname: String,
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
        NodeIdentity {
            hostname,
            listens: config
                .http
                .iter()
                .chain(&config.https)
                .map(|l| l.listen)
                .collect(),
            cluster_port: config.cluster_port,
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
}
