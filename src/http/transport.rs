//! How the connections of one HTTP listener arrive: plain or inside TLS, maybe after a
//! PROXY protocol header from a trusted proxy, and whether the listener only sends its
//! clients to https.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::config::values::Cidr;

/// The transport of a listener's connections.
#[derive(Clone, Default)]
pub struct Transport {
    /// TLS (an `https` listener): every connection starts with a handshake.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Peers whose connections may start with a PROXY protocol header (`trusted_proxies`).
    pub proxies: Arc<[Cidr]>,
    /// `redirect_https;` on a plain listener: the https port every request is sent to.
    pub redirect_https_port: Option<u16>,
}

impl Transport {
    /// Whether `peer` may speak first with a PROXY header.
    pub fn proxy_may_speak(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.proxies.iter().any(|net| net.0.contains(&peer))
    }
}

/// Marks a request that reached this node over one of its own TLS listeners; the viewer's
/// scheme is https, and redirects to peers use the (shared) https port.
#[derive(Debug, Clone, Copy)]
pub struct ArrivedOverTls {
    /// The local port of the listener.
    pub port: u16,
}

/// The address of the client a connection serves: the one its PROXY header named, else
/// the socket's peer.
pub fn connection_client(peer: SocketAddr, proxied: Option<SocketAddr>) -> SocketAddr {
    proxied.unwrap_or(peer)
}

/// The 301 that sends a request on a plain listener to the same URL on `https_port`.
/// The host is the request's own (Host header or HTTP/2 authority), without its port.
pub fn redirect_to_https(host: Option<&str>, path_and_query: &str, https_port: u16) -> Response {
    let host = host
        .and_then(host_without_port)
        .filter(|host| valid_host(host));
    let Some(host) = host else {
        let mut response = Response::new(axum::body::Body::from(
            "this listener serves https only, and the request names no host to send you to\n",
        ));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let port = match https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let location = format!("https://{host}{port}{path_and_query}");
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → the host part (brackets kept).
fn host_without_port(authority: &str) -> Option<&str> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        return Some(&authority[..=end]);
    }
    Some(
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    )
}

/// Longest host name put into a redirect (DNS names are at most 253 bytes).
const MAX_HOST_BYTES: usize = 255;

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_BYTES
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        })
}

/// `name` (a peer's `host:port`) with its port replaced by `port`.
pub fn with_port(name: &str, port: u16) -> String {
    let host = host_without_port(name).unwrap_or(name);
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(response: &Response) -> Option<&str> {
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn redirects_keep_the_host_and_path_and_drop_the_plain_port() {
        let response = redirect_to_https(Some("tv.example:8080"), "/live/index.m3u8?token=a", 8443);
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            location(&response),
            Some("https://tv.example:8443/live/index.m3u8?token=a")
        );
        let response = redirect_to_https(Some("[::1]:80"), "/", 443);
        assert_eq!(location(&response), Some("https://[::1]/"));
    }

    #[test]
    fn a_missing_or_strange_host_is_refused() {
        assert_eq!(
            redirect_to_https(None, "/", 443).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            redirect_to_https(Some("evil.example/x@"), "/", 443).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_peer_name_gets_the_tls_port() {
        assert_eq!(with_port("b.lan:8080", 8443), "b.lan:8443");
        assert_eq!(with_port("[::1]:80", 443), "[::1]:443");
    }
}
