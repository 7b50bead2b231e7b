//! Balancer redirects answered before the router.
//!
//! A balancer exists to answer a flood of `/NAME/STREAM/...` requests with redirects, so
//! those requests skip everything a general request pays for: the router's lookup, the
//! API state handed to a handler, the middleware. The listener asks [`FastPath::answer`]
//! first; a balancer path gets its 302/307 or 503 here, a path the balancer serves
//! locally goes on to the media handler with the decision attached ([`Decided`], so it
//! is not taken twice), and every other path goes on untouched.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response};

use super::client_ip::client_ip;
use crate::balancer::{BalancerRequest, Balancers, Routed};
use crate::config::values::Cidr;

/// The header proxies name the client in (de facto standard).
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A balancer decision to serve a stream here, taken by the fast path: the stream path.
#[derive(Debug, Clone)]
pub struct Decided(pub String);

/// The client of a request: the connection's address, or the client behind
/// `trusted_proxies` named by X-Forwarded-For.
pub fn client_of(remote: SocketAddr, headers: &HeaderMap, trusted: &[Cidr]) -> std::net::IpAddr {
    client_ip(
        remote.ip(),
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok()),
        trusted,
    )
}

/// What the listener asks before the router.
#[derive(Clone)]
pub struct FastPath {
    balancers: Balancers,
    trusted_proxies: std::sync::Arc<Vec<Cidr>>,
}

impl FastPath {
    /// `None` when the node has no balancer: nothing to answer early.
    pub fn new(balancers: Balancers, trusted_proxies: Vec<Cidr>) -> Option<FastPath> {
        (!balancers.is_empty()).then(|| FastPath {
            balancers,
            trusted_proxies: std::sync::Arc::new(trusted_proxies),
        })
    }

    /// The response to `request` if it is a balancer redirect or refusal; otherwise
    /// `None`, with a local decision attached to the request.
    pub fn answer<B>(
        &self,
        request: &mut Request<B>,
        remote: SocketAddr,
    ) -> Option<Response<Body>> {
        if !self.balancers.claims(request.uri().path()) {
            return None;
        }
        let client = client_of(remote, request.headers(), &self.trusted_proxies);
        let routed = self.balancers.route(BalancerRequest {
            post: *request.method() == Method::POST,
            path: request.uri().path(),
            query: request.uri().query(),
            client: Some(client),
        });
        match routed {
            Routed::Pass => None,
            Routed::Local(stream_path) => {
                request.extensions_mut().insert(Decided(stream_path));
                None
            }
            Routed::Redirect(status, location) => Some(super::media::redirect(status, &location)),
            Routed::Unavailable(why) => Some(super::media::no_server(why)),
        }
    }
}
