//! Cross-origin headers on every response a player may see.
//!
//! A player page is usually on another origin than the media (a site embedding a
//! stream). A browser lets the page read a response only when it carries
//! `Access-Control-Allow-Origin` — and that holds for every hop the player follows: the
//! 302 of a node that does not have the stream, a balancer's 302/307, the 403/404/503
//! refusals (without the header the player sees a bare network error instead of the
//! status), and the answer to a preflight `OPTIONS` (sent before a request carrying
//! `Range` or `Authorization`). So the headers go on at the outermost layer of the
//! router, on the fast path's answers and in the balancer lane alike.
//!
//! Like Flussonic, the default allows every origin (`*`). `cors_allow_origin` narrows it
//! to listed origins — the request's `Origin` is echoed when listed, with credentials
//! allowed and `Vary: Origin` — or turns the headers `off`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// How long a browser may reuse a preflight's answer (Chromium caps it at 2 h).
pub const PREFLIGHT_MAX_AGE_SECONDS: u32 = 86_400;

/// Longest `Access-Control-Request-Headers` echoed back in a preflight; a longer or
/// malformed one gets [`DEFAULT_ALLOWED_HEADERS`].
pub const MAX_ECHOED_HEADERS_BYTES: usize = 1024;

/// Request headers a preflight allows when the browser's list is not echoed.
const DEFAULT_ALLOWED_HEADERS: &str = "Authorization, Content-Type, Range";

/// Methods a cross-origin page may use: players GET and HEAD; API clients also write.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS";

/// Response headers a page may read besides the simple ones (players size downloads;
/// WHIP/WHEP clients read the resource URL from `Location`).
const EXPOSED_HEADERS: &str = "Content-Length, Content-Range, Date, Server, Location";

/// Which page origins may read this node's responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cors {
    /// `*`: every origin (the default).
    #[default]
    Any,
    /// Only these origins, echoed back with credentials allowed.
    Origins(Arc<[String]>),
    /// No CORS headers at all.
    Off,
}

impl Cors {
    /// The policy of `cors_allow_origin` (already validated by the config loader).
    pub fn from_config(origins: &[String]) -> Cors {
        match origins {
            [] => Cors::Any,
            [only] if only == "*" => Cors::Any,
            [only] if only == "off" => Cors::Off,
            listed => Cors::Origins(listed.iter().cloned().collect()),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request whose `Origin` header is
    /// `origin`; `None` when the response gets no CORS headers.
    pub fn allow_origin<'a>(&'a self, origin: Option<&'a [u8]>) -> Option<&'a str> {
        match self {
            Cors::Any => Some("*"),
            Cors::Off => None,
            Cors::Origins(listed) => {
                let origin = std::str::from_utf8(origin?).ok()?;
                listed.iter().find(|o| *o == origin).map(String::as_str)
            }
        }
    }

    /// Adds the headers of an actual (non-preflight) response to `headers`.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if let Cors::Origins(_) = self {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        let Some(allowed) = self.allow_origin(origin.map(HeaderValue::as_bytes)) else {
            return;
        };
        let Ok(allowed) = HeaderValue::from_str(allowed) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        if let Cors::Origins(_) = self {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// The same headers as raw lines (`name: value\r\n`), for the balancer lane, which
    /// writes its answers without hyper.
    pub fn write_lines(&self, origin: Option<&[u8]>, out: &mut Vec<u8>) {
        if let Cors::Origins(_) = self {
            out.extend_from_slice(b"vary: Origin\r\n");
        }
        let Some(allowed) = self.allow_origin(origin) else {
            return;
        };
        out.extend_from_slice(b"access-control-allow-origin: ");
        out.extend_from_slice(allowed.as_bytes());
        out.extend_from_slice(b"\r\naccess-control-expose-headers: ");
        out.extend_from_slice(EXPOSED_HEADERS.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Cors::Origins(_) = self {
            out.extend_from_slice(b"access-control-allow-credentials: true\r\n");
        }
    }

    /// The answer to an `OPTIONS` request: 204 with what the page may do.
    pub fn preflight(&self, request: &HeaderMap) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        self.decorate(request.get(header::ORIGIN), headers);
        headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        if headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            let asked = request
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .filter(|asked| echoable(asked.as_bytes()))
                .cloned()
                .unwrap_or(HeaderValue::from_static(DEFAULT_ALLOWED_HEADERS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(PREFLIGHT_MAX_AGE_SECONDS),
            );
        }
        response
    }
}

/// Whether a browser's list of request headers may be echoed: header names (tokens)
/// separated by commas and spaces, and not too long.
fn echoable(asked: &[u8]) -> bool {
    asked.len() <= MAX_ECHOED_HEADERS_BYTES
        && asked
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b',' | b' '))
}

/// The router's outermost layer: answers `OPTIONS` and decorates every other response.
pub async fn layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    if *cors == Cors::Off {
        return next.run(request).await;
    }
    if request.method() == Method::OPTIONS {
        return cors.preflight(request.headers());
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    cors.decorate(origin.as_ref(), response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Cors {
        Cors::from_config(&["https://a.example".into(), "http://b.example:8080".into()])
    }

    #[test]
    fn the_default_allows_every_origin_without_credentials() {
        let cors = Cors::from_config(&[]);
        let mut headers = HeaderMap::new();
        cors.decorate(None, &mut headers);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(!headers.contains_key(header::VARY));
        assert_eq!(Cors::from_config(&["*".into()]), Cors::Any);
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_nothing() {
        let cors = listed();
        let mut headers = HeaderMap::new();
        let origin = HeaderValue::from_static("http://b.example:8080");
        cors.decorate(Some(&origin), &mut headers);
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://b.example:8080"
        );
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(headers[header::VARY], "Origin");
        let mut headers = HeaderMap::new();
        let stranger = HeaderValue::from_static("https://evil.example");
        cors.decorate(Some(&stranger), &mut headers);
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(
            headers[header::VARY],
            "Origin",
            "caches must still key on it"
        );
    }

    #[test]
    fn off_sends_nothing() {
        let cors = Cors::from_config(&["off".into()]);
        let mut headers = HeaderMap::new();
        cors.decorate(None, &mut headers);
        assert!(headers.is_empty());
        let mut lines = Vec::new();
        cors.write_lines(None, &mut lines);
        assert!(lines.is_empty());
    }

    #[test]
    fn the_lanes_lines_match_the_headers() {
        let cors = listed();
        let mut lines = Vec::new();
        cors.write_lines(Some(b"https://a.example"), &mut lines);
        let text = String::from_utf8(lines).unwrap();
        assert!(text.contains("access-control-allow-origin: https://a.example\r\n"));
        assert!(text.contains("access-control-allow-credentials: true\r\n"));
        assert!(text.ends_with("\r\n"));
    }

    #[test]
    fn a_preflight_echoes_sane_header_lists_only() {
        let cors = Cors::Any;
        let mut request = HeaderMap::new();
        request.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("range, x-player-id"),
        );
        let response = cors.preflight(&request);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "range, x-player-id"
        );
        assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], "86400");
        request.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("range; drop"),
        );
        let response = cors.preflight(&request);
        assert_eq!(
            response.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
            DEFAULT_ALLOWED_HEADERS
        );
    }
}
