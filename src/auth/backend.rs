//! Asking an HTTP authorization backend (Flussonic's v1 contract, spec §7.4).
//!
//! Request: `GET URL?name=…&proto=…&ip=…&request_type=new_session|update_session&
//! request_number=N&session_id=…&stream_clients=N&total_clients=N&token=…&user_agent=…&
//! referer=…&qs=…` (the URL's own query is kept in front). Response: `200` allows (with
//! `X-AuthDuration: SECONDS` the answer holds that long, `X-UserId` names the user), `302`
//! with `Location` sends the viewer there, any other 4xx denies. A backend that does not
//! answer within [`AUTH_BACKEND_TIMEOUT`], refuses the connection or answers 5xx has given
//! no answer: the caller's default decides.
//!
//! Each call is one short HTTP/1.1 connection (TLS for `https://` backends), made once
//! per session (not per segment).
//! At most [`MAX_BACKEND_CALLS`] calls are in flight per node; beyond that a call is not
//! made and counts as no answer, so a backend that stalls cannot gather unbounded
//! sockets and tasks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_otp::rt::Runtime;
use tokio::sync::Semaphore;

/// Time a backend has to answer, connection included. Players wait this long at most for
/// their first segment when the backend is slow.
pub const AUTH_BACKEND_TIMEOUT: Duration = Duration::from_secs(3);
/// Backend calls in flight at once on one node.
pub const MAX_BACKEND_CALLS: usize = 512;
/// Longest `X-AuthDuration` honoured (a day): a backend cannot grant forever by mistake.
pub const MAX_AUTH_DURATION_SECS: u64 = 86_400;
/// Longest `Location` or `X-UserId` kept from a backend.
const MAX_BACKEND_HEADER_BYTES: usize = 2048;
/// Longest query-string copy (`qs`) sent to a backend.
const MAX_QS_BYTES: usize = 2048;

pub use crate::http::client::{OutboundUrl as BackendUrl, OutboundUrlError as BackendUrlError};

/// What the backend is told about a session.
#[derive(Debug, Clone, Default)]
pub struct BackendRequest<'a> {
    pub name: &'a str,
    /// `hls`, `mpegts`, `rtmp`… (publishers: the ingest protocol).
    pub proto: &'a str,
    pub ip: Option<IpAddr>,
    /// `new_session`, or `update_session` when an earlier answer expired.
    pub update: bool,
    pub request_number: u32,
    pub session_id: &'a str,
    pub stream_clients: usize,
    pub total_clients: usize,
    pub token: Option<&'a str>,
    pub user_agent: &'a str,
    pub referer: Option<&'a str>,
    /// The viewer's query string.
    pub qs: Option<&'a str>,
}

/// A backend's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAnswer {
    /// Allowed, for `duration` when the backend said so.
    Allow {
        duration: Option<Duration>,
        user_id: Option<String>,
    },
    /// Denied, with the HTTP status.
    Deny(u16),
    /// Send the viewer to this URL.
    Redirect(String),
    /// No answer: timeout, refused connection, 5xx, too many calls in flight.
    Unavailable(String),
}

/// The node's client for authorization backends.
#[derive(Clone)]
pub struct BackendClient {
    outbound: crate::http::client::Outbound,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendClient")
    }
}

impl BackendClient {
    pub fn new(runtime: Runtime) -> BackendClient {
        BackendClient {
            outbound: crate::http::client::Outbound::new(runtime),
            in_flight: Arc::new(Semaphore::new(MAX_BACKEND_CALLS)),
        }
    }

    /// Asks `url` about `request`, within [`AUTH_BACKEND_TIMEOUT`].
    pub async fn ask(&self, url: &BackendUrl, request: &BackendRequest<'_>) -> BackendAnswer {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return BackendAnswer::Unavailable(format!(
                "{MAX_BACKEND_CALLS} backend calls already in flight"
            ));
        };
        let target = target(url, request);
        match tokio::time::timeout(AUTH_BACKEND_TIMEOUT, self.get(url, &target)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(reason)) => BackendAnswer::Unavailable(reason),
            Err(_) => BackendAnswer::Unavailable(format!(
                "no answer within {} s",
                AUTH_BACKEND_TIMEOUT.as_secs()
            )),
        }
    }

    async fn get(&self, url: &BackendUrl, target: &str) -> Result<BackendAnswer, String> {
        let mut sender = self
            .outbound
            .connect(url, "auth-backend-connection")
            .await?;
        let request = hyper::Request::get(target)
            .header(hyper::header::HOST, &url.authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("flotilla/", env!("CARGO_PKG_VERSION")),
            )
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())?;
        Ok(answer_of(response.status().as_u16(), response.headers()))
    }
}

/// The request target: the URL's path and query, then the contract's parameters.
fn target(url: &BackendUrl, request: &BackendRequest<'_>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let ip = request.ip.map(|ip| ip.to_canonical().to_string());
    query
        .append_pair("name", request.name)
        .append_pair("proto", request.proto)
        .append_pair("ip", ip.as_deref().unwrap_or_default())
        .append_pair(
            "request_type",
            if request.update {
                "update_session"
            } else {
                "new_session"
            },
        )
        .append_pair("request_number", &request.request_number.to_string())
        .append_pair("session_id", request.session_id)
        .append_pair("stream_clients", &request.stream_clients.to_string())
        .append_pair("total_clients", &request.total_clients.to_string())
        .append_pair("token", request.token.unwrap_or_default())
        .append_pair("user_agent", request.user_agent)
        .append_pair("referer", request.referer.unwrap_or_default());
    let qs = request.qs.unwrap_or_default();
    let qs = &qs[..floor_char_boundary(qs, MAX_QS_BYTES)];
    query.append_pair("qs", qs);
    let separator = if url.path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{separator}{}", url.path_and_query, query.finish())
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// The contract's reading of a response head.
pub fn answer_of(status: u16, headers: &hyper::HeaderMap) -> BackendAnswer {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty() && value.len() <= MAX_BACKEND_HEADER_BYTES)
            .map(str::to_string)
    };
    match status {
        200..=299 => BackendAnswer::Allow {
            duration: header("x-authduration")
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(|secs| Duration::from_secs(secs.min(MAX_AUTH_DURATION_SECS))),
            user_id: header("x-userid"),
        },
        301 | 302 | 303 | 307 => match header("location") {
            Some(location) => BackendAnswer::Redirect(location),
            None => BackendAnswer::Deny(status),
        },
        400..=499 => BackendAnswer::Deny(status),
        other => BackendAnswer::Unavailable(format!("answered {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_carries_the_contracts_parameters_encoded() {
        let url = BackendUrl::parse("http://127.0.0.1:9/check?site=a").expect("parses");
        let request = BackendRequest {
            name: "live/news",
            proto: "hls",
            ip: Some("::ffff:10.0.0.1".parse().unwrap()),
            session_id: "s1",
            token: Some("a b&c"),
            user_agent: "VLC/3",
            qs: Some("token=a b&c"),
            ..BackendRequest::default()
        };
        let target = target(&url, &request);
        assert!(target.starts_with("/check?site=a&name=live%2Fnews&proto=hls&ip=10.0.0.1&request_type=new_session&request_number=0&session_id=s1"), "{target}");
        assert!(target.contains("&token=a+b%26c&"), "{target}");
    }

    #[test]
    fn responses_are_read_by_the_contract() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-authduration", "120".parse().unwrap());
        headers.insert("x-userid", "42".parse().unwrap());
        assert_eq!(
            answer_of(200, &headers),
            BackendAnswer::Allow {
                duration: Some(Duration::from_secs(120)),
                user_id: Some("42".into())
            }
        );
        assert_eq!(
            answer_of(403, &hyper::HeaderMap::new()),
            BackendAnswer::Deny(403)
        );
        let mut location = hyper::HeaderMap::new();
        location.insert("location", "http://ads.example/".parse().unwrap());
        assert_eq!(
            answer_of(302, &location),
            BackendAnswer::Redirect("http://ads.example/".into())
        );
        assert!(matches!(
            answer_of(503, &hyper::HeaderMap::new()),
            BackendAnswer::Unavailable(_)
        ));
        let mut forever = hyper::HeaderMap::new();
        forever.insert("x-authduration", "99999999".parse().unwrap());
        assert!(matches!(
            answer_of(200, &forever),
            BackendAnswer::Allow { duration: Some(d), .. } if d.as_secs() == MAX_AUTH_DURATION_SECS
        ));
    }
}
