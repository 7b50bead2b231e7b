//! WHIP and WHEP over HTTP: `POST /NAME/whip` publishes, `POST /NAME/whep` plays, with
//! the client's SDP offer as the body (`application/sdp`); the 201 answer carries the
//! node's SDP and the resource's `Location` (`/NAME/whip/ID`), which `DELETE` ends.
//!
//! | request | answer |
//! |---|---|
//! | `POST` with a good offer | 201, `Location`, the answer SDP |
//! | `POST` with a bad offer, wrong content type | 400 / 415, the reason |
//! | `POST /NAME/whip` to a stream that takes no publisher | 404; busy: 409 |
//! | `POST /NAME/whep` to a stream another node has | 307 to it (or relayed here) |
//! | `POST /NAME/whep` to a stream WebRTC cannot carry | 406, the reason |
//! | `DELETE` of a resource | 200; again, or unknown: 404 |
//! | `PATCH` (trickle ICE) | 405: the answer holds the one candidate (ICE-lite) |
//! | no port, too many connections | 503 + `Retry-After` |

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures_util::FutureExt;

use super::api::{ApiState, error_response};
use super::media::{ViewerScheme, locate};
use crate::media::directory::AttachError;
use crate::rtmp::server::RtmpContext;
use crate::sessions::{Protocol, Refused, Viewer};
use crate::webrtc::offer::{self, MAX_OFFER_BYTES, OfferError};
use crate::webrtc::outlet::{Outlet, WhepTracks};
use crate::webrtc::peer::Role;
use crate::webrtc::{Kind, Offered, WebRtc, WebRtcError};

/// Longest a WHEP viewer waits for a starting stream's first GOP.
const START_WAIT: std::time::Duration =
    std::time::Duration::from_millis(crate::defaults::STREAM_START_WAIT_MS);

/// The node's WebRTC side as the HTTP routes use it.
#[derive(Clone)]
pub struct WebRtcSide {
    pub engine: WebRtc,
    /// Publish points, templates and publish policy (shared with RTMP and SRT).
    pub publishing: RtmpContext,
}

/// A WHIP/WHEP path: the stream, the side, and the resource id of a session's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub stream: String,
    pub kind: Kind,
    pub resource: Option<String>,
}

/// Longest resource id accepted in a URL (the node makes 24 hex digits).
const MAX_RESOURCE_ID_CHARS: usize = 64;

/// The WHIP/WHEP request `path` names, if it is one.
pub fn target(path: &str) -> Option<Target> {
    let trimmed = path.trim_matches('/');
    let kind_of = |word: &str| match word {
        "whip" => Some(Kind::Whip),
        "whep" => Some(Kind::Whep),
        _ => None,
    };
    let (head, last) = trimmed.rsplit_once('/')?;
    if let Some(kind) = kind_of(last) {
        return Some(Target {
            stream: head.to_string(),
            kind,
            resource: None,
        });
    }
    let (stream, word) = head.rsplit_once('/')?;
    let kind = kind_of(word)?;
    let valid = !last.is_empty()
        && last.len() <= MAX_RESOURCE_ID_CHARS
        && last.bytes().all(|byte| byte.is_ascii_hexdigit());
    valid.then(|| Target {
        stream: stream.to_string(),
        kind,
        resource: Some(last.to_string()),
    })
}

/// What the handler needs of the request beyond the body.
pub struct Asked {
    pub client: Option<IpAddr>,
    pub query: Option<String>,
    pub user_agent: String,
    pub referer: Option<String>,
    pub scheme: ViewerScheme,
}

pub async fn serve(state: &ApiState, asked: Asked, target: Target, request: Request) -> Response {
    let Some(side) = state.webrtc.clone() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "WebRTC is not running on this node",
        );
    };
    match (request.method().clone(), &target.resource) {
        (Method::POST, None) => {
            let offer = match read_offer(request).await {
                Ok(offer) => offer,
                Err(response) => return response,
            };
            match target.kind {
                Kind::Whip => publish(state, &side, asked, &target.stream, offer).await,
                Kind::Whep => play(state, &side, asked, &target, offer).await,
            }
        }
        (Method::DELETE, Some(id)) => {
            if side.engine.delete(&target.stream, target.kind, id) {
                Response::new(Body::empty())
            } else {
                error_response(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no {} resource {id} of `{}` (it ended already, or never was)",
                        target.kind.path_word(),
                        target.stream
                    ),
                )
            }
        }
        (Method::PATCH, Some(_)) => {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "no trickle ICE: the answer holds the node's only candidate (ICE-lite)",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
            response
        }
        (Method::OPTIONS, _) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert("accept-post", HeaderValue::from_static("application/sdp"));
            headers.insert(
                header::ALLOW,
                HeaderValue::from_static("OPTIONS, POST, DELETE"),
            );
            response
        }
        (method, _) => {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not a WHIP/WHEP request: POST an offer, DELETE a resource"),
            );
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("OPTIONS, POST, DELETE"),
            );
            response
        }
    }
}

/// The offer in the request's body, or the 400/413/415 that says what is wrong.
async fn read_offer(request: Request) -> Result<str0m::change::SdpOffer, Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    if !offer::is_sdp(content_type) {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OfferError::ContentType.to_string(),
        ));
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_OFFER_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the offer is larger than {MAX_OFFER_BYTES} bytes, or its body broke off"),
            ));
        }
    };
    offer::parse(&body).map_err(|error| error_response(StatusCode::BAD_REQUEST, error.to_string()))
}

/// `POST /NAME/whip`.
async fn publish(
    state: &ApiState,
    side: &WebRtcSide,
    asked: Asked,
    name: &str,
    offer: str0m::change::SdpOffer,
) -> Response {
    if let Err(why) = crate::media::name::check(name) {
        return error_response(StatusCode::BAD_REQUEST, why.to_string());
    }
    let Some(client) = asked.client else {
        return error_response(StatusCode::BAD_REQUEST, "the client's address is unknown");
    };
    let gate = state.sessions.gate().clone();
    if let Err(denied) = gate
        .authorize_publish(name, "webrtc", Some(client), asked.query.as_deref())
        .await
    {
        tracing::info!(stream = %name, %client, reason = %denied.log_reason(), "whip publisher refused");
        return error_response(StatusCode::FORBIDDEN, denied.to_string());
    }
    let context = side.publishing.clone();
    let (attached, dynamic) = context.attach_publisher(name).await;
    let publisher = match attached {
        Ok(publisher) => publisher,
        Err(AttachError::Busy) => {
            return error_response(
                StatusCode::CONFLICT,
                format!("another publisher holds `{name}`"),
            );
        }
        Err(AttachError::NoSuchStream) => {
            return error_response(
                StatusCode::NOT_FOUND,
                format!(
                    "no stream `{name}` accepts publishing (input publish:// or a template prefix)"
                ),
            );
        }
    };
    // Keyframes as often as the stream cuts segments.
    let segment = context
        .directory
        .get(name)
        .map_or(crate::defaults::SEGMENT_DURATION_MS, |live| {
            live.packaging.segment_duration_ms
        });
    let role = Role::Ingest(crate::webrtc::ingest::Ingest::new(
        name.to_string(),
        publisher,
        std::time::Duration::from_millis(segment),
    ));
    let stream = name.to_string();
    let on_end: crate::webrtc::OnEnd = Box::new(move |ended, role| {
        async move {
            if let Role::Ingest(ingest) = role {
                context
                    .release_publisher(&stream, ingest.publisher, dynamic, ended.to_string())
                    .await;
            }
        }
        .boxed()
    });
    let offered = Offered {
        stream: name.to_string(),
        kind: Kind::Whip,
        client,
        offer,
        role,
        on_end,
    };
    match side.engine.open(offered) {
        Ok(answer) => {
            tracing::info!(stream = %name, %client, resource = %answer.id, "whip publisher attached");
            created(name, Kind::Whip, answer)
        }
        Err(error) => {
            // The publisher is dropped with the role: the publish point is free again.
            if dynamic {
                side.publishing.stop_template_stream(name).await;
            }
            refused(error)
        }
    }
}

/// `POST /NAME/whep`.
async fn play(
    state: &ApiState,
    side: &WebRtcSide,
    asked: Asked,
    target: &Target,
    offer: str0m::change::SdpOffer,
) -> Response {
    let path = format!("/{}/whep", target.stream);
    let (live, rest) = match locate(state, &path, asked.query.as_deref(), asked.scheme).await {
        Ok(found) => found,
        Err(mut response) => {
            // A POST is redirected with 307: the offer and the method go along.
            if response.status() == StatusCode::FOUND {
                *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            }
            return response;
        }
    };
    if rest != "whep" {
        return super::api::not_found(&path);
    }
    let Some(client) = asked.client else {
        return error_response(StatusCode::BAD_REQUEST, "the client's address is unknown");
    };
    let viewer = Viewer {
        stream: &live.name,
        protocol: Protocol::Webrtc,
        ip: Some(client),
        user_agent: &asked.user_agent,
        query: asked.query.as_deref(),
        referer: asked.referer.as_deref(),
    };
    let session = match state.sessions.admit_authorized(&viewer).await {
        Ok(session) => session,
        Err(Refused::Redirect(location)) => return super::media::redirect(307, &location),
        Err(refused) => return error_response(StatusCode::FORBIDDEN, refused.to_string()),
    };
    live.request(state.node.runtime.wall_clock_ms());
    live.wait_gop(START_WAIT).await;
    let carried = match WhepTracks::of(&live.program()) {
        Ok(carried) => carried,
        Err(reason) => {
            state.sessions.close(&session);
            return error_response(
                StatusCode::NOT_ACCEPTABLE,
                format!("`{}`: {reason}", live.name),
            );
        }
    };
    let outlet = Outlet::new(live.clone(), session, state.sessions.clone(), carried);
    let on_end: crate::webrtc::OnEnd = Box::new(|_, _| async {}.boxed());
    let offered = Offered {
        stream: live.name.clone(),
        kind: Kind::Whep,
        client,
        offer,
        role: Role::Outlet(outlet),
        on_end,
    };
    match side.engine.open(offered) {
        Ok(answer) => created(&live.name, Kind::Whep, answer),
        Err(error) => refused(error),
    }
}

/// The 201 of a new resource.
fn created(stream: &str, kind: Kind, answer: crate::webrtc::Answer) -> Response {
    let mut response = Response::new(Body::from(answer.sdp));
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    let location = format!("/{stream}/{}/{}", kind.path_word(), answer.id);
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

impl std::fmt::Debug for WebRtcSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcSide")
            .field("publishers", &self.engine.running(Kind::Whip))
            .field("viewers", &self.engine.running(Kind::Whep))
            .finish()
    }
}

/// The answer to an offer that got no peer connection.
fn refused(error: WebRtcError) -> Response {
    if error.client_fault() {
        return error_response(StatusCode::BAD_REQUEST, error.to_string());
    }
    tracing::warn!(%error, "webrtc peer connection refused");
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whip_and_whep_paths_name_the_stream_side_and_resource() {
        assert_eq!(
            target("/live/cam1/whip"),
            Some(Target {
                stream: "live/cam1".into(),
                kind: Kind::Whip,
                resource: None
            })
        );
        assert_eq!(
            target("/cam/whep/00ff"),
            Some(Target {
                stream: "cam".into(),
                kind: Kind::Whep,
                resource: Some("00ff".into())
            })
        );
        assert_eq!(target("/cam/whep/not-hex"), None);
        assert_eq!(target("/cam/index.m3u8"), None);
        assert_eq!(target("/whip"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_paths_never_panic(path in "[a-z/]{0,40}(whip|whep)?(/[0-9a-f]{0,70})?") {
            if let Some(found) = target(&path) {
                prop_assert!(found.resource.as_ref().is_none_or(|id| id.len() <= MAX_RESOURCE_ID_CHARS));
            }
        }
    }
}
