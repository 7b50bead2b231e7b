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
    client_ip(remote.ip(), forwarded_for(headers), trusted)
}

/// The `X-Forwarded-For` values of `headers`, in header order (a value that is not text
/// is no hop to trust).
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
}

/// What the listener asks before the router.
#[derive(Clone)]
pub struct FastPath {
    balancers: Balancers,
    trusted_proxies: std::sync::Arc<Vec<Cidr>>,
    cors: std::sync::Arc<super::cors::Cors>,
}

impl FastPath {
    /// `None` when the node has no balancer: nothing to answer early.
    pub fn new(
        balancers: Balancers,
        trusted_proxies: Vec<Cidr>,
        cors: super::cors::Cors,
    ) -> Option<FastPath> {
        (!balancers.is_empty()).then(|| FastPath {
            balancers,
            trusted_proxies: std::sync::Arc::new(trusted_proxies),
            cors: std::sync::Arc::new(cors),
        })
    }

    /// The CORS headers its answers carry.
    pub fn cors(&self) -> &super::cors::Cors {
        &self.cors
    }

    /// The response to `request` if it is a balancer redirect or refusal; otherwise
    /// `None`, with a local decision attached to the request.
    pub fn answer<B>(
        &self,
        request: &mut Request<B>,
        remote: SocketAddr,
    ) -> Option<Response<Body>> {
        // A preflight is answered by the router's CORS layer, never redirected.
        if !self.claims(request.uri().path()) || request.method() == Method::OPTIONS {
            return None;
        }
        let routed = self.route(
            *request.method() == Method::POST,
            request.uri().path(),
            request.uri().query(),
            remote,
            forwarded_for(request.headers()),
            request
                .extensions()
                .get::<super::transport::ArrivedOverTls>()
                .map(|arrived| arrived.port),
        );
        match routed {
            Routed::Pass => None,
            Routed::Local(stream_path) => {
                request.extensions_mut().insert(Decided(stream_path));
                None
            }
            Routed::Redirect(status, location) => {
                Some(self.with_cors(request.headers(), super::media::redirect(status, &location)))
            }
            Routed::Unavailable(why) => {
                Some(self.with_cors(request.headers(), super::media::no_server(why)))
            }
        }
    }

    fn with_cors(&self, request: &HeaderMap, mut response: Response<Body>) -> Response<Body> {
        self.cors.decorate(
            request.get(axum::http::header::ORIGIN),
            response.headers_mut(),
        );
        response
    }

    /// Whether `path` is a balancer's (`/NAME/...`): cheap, no allocation.
    pub fn claims(&self, path: &str) -> bool {
        self.balancers.claims(path)
    }

    /// One balancer decision for a request from `remote` whose `X-Forwarded-For` values
    /// are `forwarded` (in header order): the client behind trusted proxies, its country,
    /// the mode's choice.
    pub fn route<'a>(
        &self,
        post: bool,
        path: &str,
        query: Option<&str>,
        remote: SocketAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
        tls_port: Option<u16>,
    ) -> Routed {
        let client = client_ip(remote.ip(), forwarded, &self.trusted_proxies);
        self.balancers.route(BalancerRequest {
            post,
            path,
            query,
            client: Some(client),
            tls_port,
        })
    }

    /// Monotonic now, from the node's runtime (the lane's header deadline).
    pub fn now(&self) -> tokio::time::Instant {
        self.balancers.now()
    }

    /// Unix ms now, from the node's runtime (the `Date` of answers written by hand).
    pub fn wall_clock_ms(&self) -> u64 {
        self.balancers.wall_clock_ms()
    }
}
