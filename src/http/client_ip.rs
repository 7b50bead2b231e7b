//! Who the client is: the socket's address, or — only when that address is a configured
//! trusted proxy (`trusted_proxies`) — the rightmost address of `X-Forwarded-For` that
//! is not itself a trusted proxy.
//!
//! Anyone can write an `X-Forwarded-For` header, so believing it from everyone would let
//! a viewer pick its own country. Reading right to left and stopping at the first
//! untrusted hop means a client can only prepend addresses, never hide behind them.

use std::net::{IpAddr, SocketAddr};

use crate::config::values::Cidr;

/// Most `X-Forwarded-For` hops examined (real chains are 1–3 proxies long).
pub const MAX_FORWARDED_HOPS: usize = 16;

/// The scheme the viewer used: `https` when the request came from a trusted proxy that
/// says so in `X-Forwarded-Proto` (it terminated TLS), else `http` (this node's listeners
/// are plain HTTP). From anyone else the header is ignored.
pub fn viewer_scheme(
    peer: IpAddr,
    forwarded_proto: Option<&str>,
    trusted: &[Cidr],
) -> &'static str {
    let peer = peer.to_canonical();
    let from_proxy = trusted.iter().any(|net| net.0.contains(&peer));
    // The proxy nearest this node writes the last value.
    let said = forwarded_proto
        .and_then(|value| value.rsplit(',').next())
        .map(str::trim);
    match said {
        Some(proto) if from_proxy && proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

/// The client of a request that arrived from `peer` with these `X-Forwarded-For` header
/// values (in header order). IPv4-mapped IPv6 addresses count as IPv4.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.0.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let hops = forwarded_for
        .rev()
        .flat_map(|value| value.rsplit(','))
        .take(MAX_FORWARDED_HOPS);
    for hop in hops {
        // Garbage ends the chain: the last believable hop is the answer.
        let Some(ip) = parse_hop(hop.trim()) else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

/// One hop: an address, optionally with a port (`1.2.3.4:5678`, `[2001:db8::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewers_scheme_is_believed_from_trusted_proxies_only() {
        let trusted = [Cidr("10.0.0.0/8".parse().unwrap())];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(viewer_scheme(proxy, Some("https"), &trusted), "https");
        assert_eq!(viewer_scheme(proxy, Some("http, HTTPS"), &trusted), "https");
        assert_eq!(viewer_scheme(proxy, Some("https, http"), &trusted), "http");
        assert_eq!(viewer_scheme(proxy, None, &trusted), "http");
        assert_eq!(viewer_scheme(stranger, Some("https"), &trusted), "http");
    }
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|net| Cidr(net.parse().unwrap())).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_from_trusted_proxies_only() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let header = ["203.0.113.9, 10.1.1.1"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), header.into_iter(), &trusted),
            ip("203.0.113.9"),
            "proxy chain 127.0.0.1 ← 10.1.1.1 ← client"
        );
        assert_eq!(
            client_ip(ip("192.0.2.1"), header.into_iter(), &trusted),
            ip("192.0.2.1"),
            "from an untrusted peer the header is ignored"
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), header.into_iter(), &[]),
            ip("127.0.0.1"),
            "nobody trusted by default"
        );
    }

    #[test]
    fn a_client_cannot_hide_behind_prepended_addresses() {
        let trusted = nets(&["127.0.0.1/32"]);
        // The client sent `X-Forwarded-For: 8.8.8.8`; the proxy appended the real one.
        let headers = ["8.8.8.8", "198.51.100.7"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), headers.into_iter(), &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last believable hop.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                ["unknown, 127.0.0.1"].into_iter(),
                &trusted
            ),
            ip("127.0.0.1")
        );
        // Ports and brackets, mapped addresses.
        assert_eq!(
            client_ip(
                ip("::ffff:127.0.0.1"),
                ["[2001:db8::5]:4711"].into_iter(),
                &trusted
            ),
            ip("2001:db8::5")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["192.0.2.1:80"].into_iter(), &trusted),
            ip("192.0.2.1")
        );
    }

    proptest! {
        /// The answer is the peer or a hop of the header; never a trusted address while
        /// an untrusted hop is within reach; the peer itself when it is not trusted.
        #[test]
        fn the_answer_is_the_nearest_untrusted_hop(
            peer_trusted in any::<bool>(),
            hops in proptest::collection::vec((any::<bool>(), any::<u8>()), 0..24),
        ) {
            let trusted = nets(&["10.0.0.0/8"]);
            let peer = if peer_trusted { ip("10.0.0.1") } else { ip("192.0.2.1") };
            let hop_ips: Vec<IpAddr> = hops
                .iter()
                .map(|(t, last)| if *t { ip(&format!("10.9.9.{last}")) } else { ip(&format!("203.0.113.{last}")) })
                .collect();
            let header = hop_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let client = client_ip(peer, [header.as_str()].into_iter(), &trusted);
            if !peer_trusted || hop_ips.is_empty() {
                prop_assert_eq!(client, peer);
            } else {
                let reachable: Vec<&IpAddr> = hop_ips.iter().rev().take(MAX_FORWARDED_HOPS).collect();
                let expected = reachable
                    .iter()
                    .find(|ip| !trusted[0].0.contains(**ip))
                    .copied()
                    .unwrap_or(reachable[reachable.len() - 1]);
                prop_assert_eq!(client, *expected);
            }
        }
    }
}
