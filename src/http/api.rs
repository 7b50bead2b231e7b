//! The node's HTTP API routes.
//!
//! Paths follow Flussonic's: `/streamer/api/v3/…` (also served under `/flussonic/api/v3/…`),
//! plus flotilla's own `/flotilla/api/…`. Handlers read shared state only; none waits on an
//! actor mailbox longer than the request deadline.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flotilla_otp::node::NodeContext;
use serde_json::{Value, json};

use super::access::{Access, AccessPolicy, Refusal};
use super::server::remote_addr;
use crate::config::Config;
use crate::config::identity::NodeIdentity;
use crate::live::Live;
use crate::media::directory::Directory;
use crate::sessions::SessionTable;
use crate::stats::StatsBoard;

/// What API handlers share: [`ApiShared`] behind one reference count, since the router
/// hands every request its own clone (a clone of the fields was two dozen reference
/// counts touched per request, a tenth of a playlist request's CPU).
#[derive(Debug, Clone)]
pub struct ApiState(Arc<ApiShared>);

impl ApiState {
    pub fn new(shared: ApiShared) -> ApiState {
        ApiState(Arc::new(shared))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiShared;

    fn deref(&self) -> &ApiShared {
        &self.0
    }
}

/// What API handlers share: immutable config and identity, and the node's context
/// (runtime and actor registry).
#[derive(Debug)]
pub struct ApiShared {
    /// The running config: replaced by a reload (read a snapshot per request).
    pub config: Live<Config>,
    pub identity: Arc<NodeIdentity>,
    /// Who may read and edit through the API: replaced by a reload.
    pub access: Live<AccessPolicy>,
    pub node: NodeContext,
    /// The running streams' shared state (the data plane).
    pub directory: Directory,
    /// Node statistics, refreshed by the sampler.
    pub stats: StatsBoard,
    /// Viewer sessions.
    pub sessions: SessionTable,
    /// The cluster mesh, when the node has a cluster key.
    pub mesh: Option<crate::mesh::service::MeshService>,
    /// What the cluster_ingest coordinator decided.
    pub ingest: flotilla_cluster::ingest::board::IngestBoard,
    /// The node's balancers (`/NAME/STREAM/...`).
    pub balancers: crate::balancer::Balancers,
    /// Relays other nodes' streams for this node's viewers (with a mesh).
    pub relays: Option<crate::relay::start::RelayStarter>,
    /// Other clusters this node restreams (`source`).
    pub sources: Option<crate::source::NodeSources>,
    /// Asks the node to reload its config.
    pub reload: crate::reload::ReloadHandle,
    /// The access log (`logrequests`).
    pub access_log: Option<crate::logfile::LineLog>,
    /// Where the node's events go (`event_sink`).
    pub events: crate::events::EventBus,
    /// LL-HLS requests held for a part or playlist update now (bounded).
    pub held: super::cmaf::HeldRequests,
    /// WHIP/WHEP (none when the node could not set WebRTC up).
    pub webrtc: Option<super::webrtc::WebRtcSide>,
}

/// The router of a listener: API routes when `with_api`, and a JSON 404 for the rest.
pub fn router(state: ApiState, with_api: bool) -> Router {
    // The embed page's player script, on media listeners too.
    let mut router = Router::new().route(
        super::media::PLAYER_SCRIPT_PATH,
        get(super::media::player_script),
    );
    if with_api {
        // Health is for load balancers and orchestrators: no credentials, nothing secret.
        router = router.route("/flotilla/api/health", get(health));
        let protected = Router::new()
            .route("/streamer/api/v3/config", get(config))
            .route("/flussonic/api/v3/config", get(config))
            .route(
                "/streamer/api/v3/config/stats",
                get(super::streams::node_stats),
            )
            .route(
                "/flussonic/api/v3/config/stats",
                get(super::streams::node_stats),
            )
            .route("/streamer/api/v3/streams", get(super::streams::list))
            .route("/streamer/api/v3/cluster/peers", get(super::cluster::peers))
            .route(
                "/streamer/api/v3/cluster/streams",
                get(super::cluster::streams),
            )
            .route(
                "/streamer/api/v3/cluster/ingest",
                get(super::cluster::ingest),
            )
            .route(
                "/streamer/api/v3/cluster/sources",
                get(super::sources::list),
            )
            .route(
                "/flussonic/api/v3/cluster/sources",
                get(super::sources::list),
            )
            .route(
                "/streamer/api/v3/cluster/balancers/{name}",
                get(super::cluster::balancer),
            )
            .route(
                "/flussonic/api/v3/cluster/ingest",
                get(super::cluster::ingest),
            )
            .route(
                "/flussonic/api/v3/cluster/peers",
                get(super::cluster::peers),
            )
            .route("/flussonic/api/v3/streams", get(super::streams::list))
            .route("/streamer/api/v3/sessions", get(super::streams::sessions))
            .route("/flotilla/api/metrics", get(super::metrics::all))
            .route("/flotilla/api/reload", axum::routing::post(reload))
            .route("/flotilla/console", get(crate::console::overview))
            .route(
                "/flotilla/console/reload",
                axum::routing::post(crate::console::reload),
            )
            .route(
                "/flotilla/console/restart/{*stream}",
                axum::routing::post(crate::console::restart),
            )
            .route("/flotilla/api/actors", get(super::actors::tree))
            .route(
                "/flotilla/api/actors/{*path}",
                get(super::actors::show).post(super::actors::kill),
            )
            .route_layer(middleware::from_fn_with_state(state.clone(), require_view));
        router = router.merge(protected);
    }
    // Everything else is media: /NAME/index.m3u8, /NAME/mpegts, … on every listener.
    let cors = Arc::new(super::cors::Cors::from_config(
        &state.config.get().cors_allow_origin,
    ));
    let logged = state.access_log.is_some();
    let router = router.fallback(super::media::serve);
    let router = match logged {
        true => router.layer(middleware::from_fn_with_state(
            state.clone(),
            super::access_log::log_request,
        )),
        false => router,
    };
    router
        .with_state(state)
        .layer(middleware::from_fn_with_state(cors, super::cors::layer))
}

/// The 404 of a path that is neither an API route nor a stream.
pub fn not_found(path: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("no route or stream for {path}"),
    )
}

/// A JSON error body: `{"error": "..."}`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /flotilla/api/reload` (edit_auth): reads the config file again and applies it;
/// answers what changed, or the errors (with line:col) and that nothing changed.
async fn reload(State(state): State<ApiState>) -> Response {
    match state.reload.reload("api").await {
        Ok(report) => Json(report).into_response(),
        Err(error) => {
            let status =
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error_response(status, error.to_string())
        }
    }
}

/// Access needed by a request: reading for GET/HEAD, editing for anything else.
fn needed_access(request: &Request) -> Access {
    match *request.method() {
        axum::http::Method::GET | axum::http::Method::HEAD => Access::View,
        _ => Access::Edit,
    }
}

async fn require_view(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    // The shell's in-process calls carry the rights their connection proved.
    if let Some(crate::shell::server::ShellCaller(granted)) = request
        .extensions()
        .get::<crate::shell::server::ShellCaller>()
        .copied()
    {
        if granted < needed_access(&request) {
            return error_response(
                StatusCode::FORBIDDEN,
                "this changes the node: log in with edit_auth or the cluster key",
            );
        }
        request.extensions_mut().insert(granted);
        return next.run(request).await;
    }
    let client = remote_addr(&request).map(|addr| addr.ip());
    match state
        .access
        .get()
        .check(client, request.headers(), needed_access(&request))
    {
        Ok(granted) => {
            request.extensions_mut().insert(granted);
            next.run(request).await
        }
        Err(Refusal::NetworkNotAllowed) => error_response(
            StatusCode::FORBIDDEN,
            "this address is not in api_allowed_from",
        ),
        Err(Refusal::ReadOnly) => error_response(
            StatusCode::FORBIDDEN,
            "view_auth credentials are read-only; this needs edit_auth",
        ),
        Err(Refusal::Unauthorized) => {
            let mut response = error_response(StatusCode::UNAUTHORIZED, "credentials required");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"flotilla\""),
            );
            response
        }
    }
}

async fn health(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "hostname": state.identity.hostname,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": state.node.runtime.uptime().as_secs(),
    }))
}

/// Fields that hold secrets anywhere in the config JSON.
const SECRET_FIELDS: [&str; 2] = ["cluster_key", "password"];

/// Replaces every secret field with `"***"`, at any depth.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) && !field.is_null() {
                    *field = Value::String("***".into());
                } else if key == "url"
                    && let Value::String(url) = field
                {
                    // A camera's URL may carry its password.
                    *url = crate::media::input::redacted(url);
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

async fn config(State(state): State<ApiState>, request: Request) -> Response {
    let access = request
        .extensions()
        .get::<Access>()
        .copied()
        .unwrap_or(Access::None);
    let mut value = match serde_json::to_value(&*state.config.get()) {
        Ok(value) => value,
        Err(error) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("config does not serialize: {error}"),
            );
        }
    };
    // Only an administrator sees secrets; with no edit_auth configured, nobody does.
    if access != Access::Edit {
        redact(&mut value);
    }
    Json(value).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use axum::body::Body;
    use base64::Engine;
    use tower::ServiceExt;

    fn state(text: &str) -> ApiState {
        let config = load_str("t", text).unwrap().config;
        let node = NodeContext::new("node-a", flotilla_otp::rt::Runtime::deterministic(1, 0));
        let directory = Directory::default();
        let io = crate::balancer::NodeBalancerIo::new(
            &config,
            &NodeIdentity::resolve(&config, Some("node-a"), None),
            None,
            crate::stats::start(&node.runtime, directory.clone(), "node-a".into(), 0),
            directory.clone(),
        );
        let balancers = crate::balancer::Balancers::new(
            &config,
            Arc::new(io),
            flotilla_cluster::balancer::BalancerBoard::default(),
            None,
            node.runtime.clone(),
        );
        ApiState::new(ApiShared {
            identity: Arc::new(NodeIdentity::resolve(&config, Some("node-a"), None)),
            access: Live::new(AccessPolicy::from_config(&config)),
            sessions: SessionTable::new(
                &config,
                node.clone(),
                directory.clone(),
                crate::auth::Gate::from_config(&config, node.runtime.clone(), None)
                    .expect("the test config's policies resolve"),
            ),
            stats: crate::stats::start(&node.runtime, directory.clone(), "node-a".into(), 0),
            config: Live::new(config),
            node,
            directory,
            mesh: None,
            ingest: Default::default(),
            balancers,
            relays: None,
            sources: None,
            reload: crate::reload::ReloadHandle::channel().0,
            access_log: None,
            events: crate::events::EventBus::none(flotilla_otp::rt::Runtime::deterministic(1, 0)),
            held: Default::default(),
            webrtc: None,
        })
    }

    async fn get_json(router: Router, path: &str, auth: Option<&str>) -> (StatusCode, Value) {
        let mut request = axum::http::Request::get(path);
        if let Some(credentials) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(credentials);
            request = request.header(header::AUTHORIZATION, format!("Basic {token}"));
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                5555,
            ))));
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    const CONFIG: &str =
        "http 80; cluster_key longlonglonglongkey; edit_auth admin pw1; view_auth viewer pw2;
        stream cam { input tshttp://h/cam; input rtsp://admin:campw@cam/h264; password pub; }";

    #[tokio::test]
    async fn health_needs_no_credentials() {
        let (status, body) =
            get_json(router(state(CONFIG), true), "/flotilla/api/health", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["hostname"], "node-a");
    }

    #[tokio::test]
    async fn config_is_protected_and_redacted_for_viewers() {
        let (status, _) =
            get_json(router(state(CONFIG), true), "/streamer/api/v3/config", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = get_json(
            router(state(CONFIG), true),
            "/streamer/api/v3/config",
            Some("viewer:pw2"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["cluster_key"], "***");
        assert_eq!(body["edit_auth"]["password"], "***");
        assert_eq!(body["streams"][0]["password"], "***");
        assert_eq!(body["streams"][0]["inputs"][0]["url"], "tshttp://h/cam");
        assert_eq!(
            body["streams"][0]["inputs"][1]["url"], "rtsp://admin:***@cam/h264",
            "a camera's password is a secret"
        );
        let (_, body) = get_json(
            router(state(CONFIG), true),
            "/flussonic/api/v3/config",
            Some("admin:pw1"),
        )
        .await;
        assert_eq!(body["cluster_key"], "longlonglonglongkey");
    }

    #[tokio::test]
    async fn media_only_listener_has_no_api() {
        let (status, body) = get_json(
            router(state(CONFIG), false),
            "/streamer/api/v3/config",
            Some("admin:pw1"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("no route or stream")
        );
    }
}
