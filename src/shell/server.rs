//! The node's side of the shell: authenticated QUIC connections (the mesh endpoint,
//! shell ALPN) from allowed addresses only; one command per bidirectional stream,
//! answered through the node's own HTTP API in-process, or forwarded to a peer once for
//! `@NODE`. A connection proves the cluster key (mutual TLS: edit rights, since holding
//! the key is holding the cluster) or logs in with `edit_auth`/`view_auth` credentials
//! on its first stream (`login`: the rights those credentials have over HTTP).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::commands::{self, COMMANDS, Command, TopKey};
use super::login::{self, LoginRequest, Side, binding};
use super::wire::{self, MAX_REPLY_BYTES, MAX_REQUEST_BYTES, Reply, Request as ShellRequest};
use crate::config::model::Credentials;
use crate::config::values::Cidr;
use crate::error::{Classified, Fault};
use crate::http::access::Access;
use crate::log_limit::LimitedWarning;
use crate::mesh::service::{MeshService, ShellAcceptor};
use flotilla_otp::rt::Runtime;

/// Time a command may take, end to end (a forwarded one included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest trace event line (events are one-line summaries and reasons).
const MAX_TRACE_LINE_BYTES: usize = 16 * 1024;
/// Commands one connection may have in flight; more wait for QUIC flow control.
pub const MAX_STREAMS_PER_CONNECTION: usize = 4;
/// Time a connection without the cluster key has to log in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Logins checked at once on a node; more wait (with [`FAILED_LOGIN_DELAY`], this
/// bounds password guessing to a few per second whatever the number of connections).
pub const MAX_CONCURRENT_LOGINS: usize = 4;
/// A refused login is answered only after this delay.
pub const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);
/// Time given to a refused login's answer to reach the client before the connection
/// closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Marks a request the shell makes to the node's API, with the rights its connection
/// proved: edit for the cluster key, else what the login's credentials grant.
#[derive(Debug, Clone, Copy)]
pub struct ShellCaller(pub Access);

/// Who runs a command: where from, with which rights.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub remote: SocketAddr,
    pub access: Access,
}

/// Whether `command` changes something (a POST through the API), here or on a peer.
fn needs_edit(command: &Command) -> bool {
    match command {
        Command::On { command, .. } => needs_edit(command),
        other => commands::api_call(other).is_some_and(|(post, _)| post),
    }
}

/// Serves shell connections. Cheap to clone.
#[derive(Clone)]
pub struct ShellServer {
    runtime: Runtime,
    router: Router,
    mesh: MeshService,
    allowed_from: Arc<Vec<Cidr>>,
    /// `edit_auth` and `view_auth`, for logins without the cluster key.
    credentials: Arc<(Option<Credentials>, Option<Credentials>)>,
    /// Permits for logins being checked ([`MAX_CONCURRENT_LOGINS`]).
    logins: Arc<tokio::sync::Semaphore>,
    /// Refusals anyone can cause, one per connection: written at most once per interval.
    refused_logins: Arc<LimitedWarning>,
    refused_addresses: Arc<LimitedWarning>,
}

impl ShellServer {
    /// Commands run through `router` (the node's API); `@NODE` goes through `mesh`;
    /// connections from loopback or `allowed_from` only.
    pub fn new(
        runtime: Runtime,
        router: Router,
        mesh: MeshService,
        allowed_from: Vec<Cidr>,
        edit_auth: Option<Credentials>,
        view_auth: Option<Credentials>,
    ) -> ShellServer {
        ShellServer {
            runtime,
            router,
            mesh,
            allowed_from: Arc::new(allowed_from),
            credentials: Arc::new((edit_auth, view_auth)),
            logins: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_LOGINS)),
            refused_logins: LimitedWarning::outsider("shell login refused"),
            refused_addresses: LimitedWarning::outsider("shell connection refused"),
        }
    }

    /// Runs the login of a connection without the cluster key: the rights granted, or
    /// `None` (refused, told why, closed).
    async fn login(&self, connection: &quinn::Connection) -> Option<Access> {
        let remote = connection.remote_address();
        let attempt = async {
            let (send, mut receive) = connection.accept_bi().await.ok()?;
            let request = wire::read::<LoginRequest>(&mut receive, MAX_REQUEST_BYTES).await;
            Some((request, send))
        };
        let Ok(Some((request, mut send))) = tokio::time::timeout(LOGIN_TIMEOUT, attempt).await
        else {
            connection.close(3u32.into(), b"no login in time");
            return None;
        };
        // Checking (and a refusal's delay) holds a permit; waiting for the frame does not.
        let _permit = self.logins.acquire().await.ok()?;
        let (edit, view) = (&self.credentials.0, &self.credentials.1);
        let refusal = match (&request, binding(connection)) {
            _ if edit.is_none() && view.is_none() => {
                "this node has no edit_auth or view_auth: use the cluster key".to_string()
            }
            (Err(error), _) => format!("bad login frame: {error}"),
            (_, Err(error)) => error.to_string(),
            (Ok(request), Ok(binding)) => {
                match login::check(request, &binding, edit.as_ref(), view.as_ref()) {
                    Some((access, credentials)) => {
                        let reply = Reply {
                            status: 200,
                            body: json!({
                                "access": if access == Access::Edit { "edit" } else { "view" },
                                "proof": login::proof(&credentials.password.0, Side::Server, &binding),
                            }),
                        };
                        if wire::write(&mut send, &reply, MAX_REPLY_BYTES)
                            .await
                            .is_err()
                        {
                            return None;
                        }
                        let _ = send.finish();
                        tracing::info!(%remote, user = %request.user, ?access, "shell login");
                        return Some(access);
                    }
                    None => "wrong user or password".to_string(),
                }
            }
        };
        self.refused_logins.warn(&self.runtime, || {
            tracing::warn!(%remote, reason = %refusal, "shell login refused");
        });
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        let _ = wire::write(&mut send, &Reply::error(401, refusal), MAX_REPLY_BYTES).await;
        let _ = send.finish();
        let _ = tokio::time::timeout(REFUSAL_LINGER, send.stopped()).await;
        connection.close(3u32.into(), b"login refused");
        None
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.allowed_from.iter().any(|net| net.0.contains(&ip))
    }

    async fn serve_connection(self, connection: quinn::Connection) {
        let remote = connection.remote_address();
        if !self.allows(remote.ip()) {
            self.refused_addresses.warn(&self.runtime, || {
                tracing::warn!(%remote, "shell connection refused: not loopback nor in shell_allowed_from");
            });
            connection.close(
                2u32.into(),
                b"shell connections are accepted from loopback or shell_allowed_from only",
            );
            return;
        }
        let access = if crate::mesh::auth::holds_cluster_key(&connection) {
            Access::Edit
        } else {
            match self.login(&connection).await {
                Some(access) => access,
                None => return,
            }
        };
        let caller = Caller { remote, access };
        tracing::info!(%remote, ?access, "shell connected");
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS_PER_CONNECTION));
        while let Ok((send, receive)) = connection.accept_bi().await {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let server = self.clone();
            self.runtime.spawn("shell-command", async move {
                server.serve_stream(send, receive, caller).await;
                drop(permit);
            });
        }
        tracing::info!(%remote, "shell disconnected");
    }

    /// One command on one stream: a reply, or a trace's stream of replies.
    async fn serve_stream(
        &self,
        mut send: quinn::SendStream,
        mut receive: quinn::RecvStream,
        caller: Caller,
    ) {
        let read = tokio::time::timeout(
            COMMAND_TIMEOUT,
            wire::read::<ShellRequest>(&mut receive, MAX_REQUEST_BYTES),
        );
        let reply = match read.await {
            Ok(Ok(request)) => {
                tracing::info!(remote = %caller.remote, command = %request.line, "shell command");
                if let Ok(Command::Trace { path, count }) = commands::parse(&request.line) {
                    self.stream_trace(&path, count, caller, &mut send).await;
                    let _ = send.finish();
                    return;
                }
                tokio::time::timeout(COMMAND_TIMEOUT, self.answer(&request.line, caller))
                    .await
                    .unwrap_or_else(|_| {
                        Reply::error(504, format!("no answer within {COMMAND_TIMEOUT:?}"))
                    })
            }
            Ok(Err(error)) => Reply::error(400, format!("bad request frame: {error}")),
            Err(_) => Reply::error(408, "no command arrived in time"),
        };
        if let Err(wire::FrameError::TooLarge(size, _)) =
            wire::write(&mut send, &reply, MAX_REPLY_BYTES).await
        {
            let too_large = Reply::error(
                507,
                format!("the answer ({size} bytes) is over the shell's limit; narrow the command"),
            );
            let _ = wire::write(&mut send, &too_large, MAX_REPLY_BYTES).await;
        }
        let _ = send.finish();
    }

    /// Runs one command line.
    pub async fn answer(&self, line: &str, caller: Caller) -> Reply {
        let command = match commands::parse(line) {
            Ok(command) => command,
            Err(error) => return Reply::error(400, error.0),
        };
        if caller.access < Access::Edit && needs_edit(&command) {
            return Reply::error(
                403,
                "this changes the node: log in with edit_auth or the cluster key",
            );
        }
        match &command {
            Command::Help => Reply {
                status: 200,
                body: json!({
                    "commands": COMMANDS
                        .iter()
                        .map(|(usage, what)| json!({"command": usage, "does": what}))
                        .collect::<Vec<_>>()
                }),
            },
            Command::On { command, .. } if matches!(**command, Command::Trace { .. }) => {
                Reply::error(
                    400,
                    "trace follows the node you are connected to: connect to that node with --node",
                )
            }
            Command::On { node, .. } => {
                let rest = line
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .map_or("", |(_, rest)| rest.trim());
                self.forward(node, rest).await
            }
            Command::Nodes => self.nodes(caller).await,
            Command::Ps(limit) => self.listed(caller, None, *limit).await,
            Command::Top(key, limit) => self.listed(caller, Some(*key), *limit).await,
            other => match commands::api_call(other) {
                Some((post, path)) => self.call_api(post, &path, caller).await,
                None => Reply::error(400, "nothing to do"),
            },
        }
    }

    /// Calls the node's API in-process with edit rights.
    async fn call_api(&self, post: bool, path: &str, caller: Caller) -> Reply {
        let response = match self.api_response(post, path, caller).await {
            Ok(response) => response,
            Err(reply) => return reply,
        };
        let status = response.status().as_u16();
        let body = match http_body_util::Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) => return Reply::error(507, format!("answer too large: {error}")),
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            json!({ "error": String::from_utf8_lossy(&body).chars().take(500).collect::<String>() })
        });
        Reply { status, body }
    }

    /// The node's API answer to `path`, asked in-process with the shell's rights.
    async fn api_response(
        &self,
        post: bool,
        path: &str,
        caller: Caller,
    ) -> Result<axum::response::Response, Reply> {
        let mut request = Request::builder()
            .method(if post { Method::POST } else { Method::GET })
            .uri(path)
            .body(Body::empty())
            .map_err(|error| Reply::error(400, format!("bad path {path}: {error}")))?;
        request.extensions_mut().insert(ShellCaller(caller.access));
        request.extensions_mut().insert(ConnectInfo(caller.remote));
        match self.router.clone().oneshot(request).await {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        }
    }

    /// Streams an actor's events, one reply frame per event, until the API's feed ends or
    /// the operator goes away.
    async fn stream_trace(
        &self,
        path: &str,
        count: usize,
        caller: Caller,
        send: &mut quinn::SendStream,
    ) {
        let Some((_, call)) = commands::api_call(&Command::Trace {
            path: path.to_string(),
            count,
        }) else {
            return;
        };
        let response = match self.api_response(false, &call, caller).await {
            Ok(response) => response,
            Err(reply) => {
                let _ = wire::write(send, &reply, MAX_REPLY_BYTES).await;
                return;
            }
        };
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let bytes = http_body_util::Limited::new(body, MAX_TRACE_LINE_BYTES)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!({"error": "trace refused"}));
            let _ = wire::write(send, &Reply { status, body }, MAX_REPLY_BYTES).await;
            return;
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
                if wire::write(
                    send,
                    &Reply {
                        status: 200,
                        body: event,
                    },
                    MAX_REPLY_BYTES,
                )
                .await
                .is_err()
                {
                    // The operator left (Ctrl-C): dropping the body ends the trace.
                    return;
                }
            }
            if pending.len() > MAX_TRACE_LINE_BYTES {
                return;
            }
        }
    }

    /// This node (health) and its peers.
    async fn nodes(&self, caller: Caller) -> Reply {
        let me = self.call_api(false, "/flotilla/api/health", caller).await;
        let peers = self
            .call_api(false, "/streamer/api/v3/cluster/peers", caller)
            .await;
        if peers.status >= 400 {
            return peers;
        }
        Reply {
            status: 200,
            body: json!({ "self": me.body, "peers": peers.body["peers"] }),
        }
    }

    /// `ps` (tree order) or `top KEY` (most first), bounded to `limit` rows.
    async fn listed(&self, caller: Caller, key: Option<TopKey>, limit: usize) -> Reply {
        let tree = self.call_api(false, "/flotilla/api/actors", caller).await;
        if tree.status >= 400 {
            return tree;
        }
        let mut actors = Vec::new();
        flatten(&tree.body, &mut actors);
        let total = actors.len();
        if let Some(key) = key {
            let field = key.field();
            actors.sort_by_key(|actor| std::cmp::Reverse(actor[field].as_u64().unwrap_or(0)));
        }
        actors.truncate(limit);
        Reply {
            status: 200,
            body: json!({ "actors": actors, "total": total, "sorted_by": key.map(TopKey::field) }),
        }
    }

    /// Runs `line` on peer `node` (its identity `host:port`, its key, or its hostname)
    /// through the mesh.
    async fn forward(&self, node: &str, line: &str) -> Reply {
        let now_ms = self.runtime.wall_clock_ms();
        let address = {
            let view = self.mesh.view().read().unwrap_or_else(|p| p.into_inner());
            view.peers(now_ms)
                .find(|(peer, _)| peer.id == node || peer.name == node || peer.hostname == node)
                .map(|(peer, _)| peer.name.clone())
        };
        let Some(key) = address else {
            return Reply::error(404, format!("no peer called {node} (see `nodes`)"));
        };
        let Some(address) = resolve(&key).await else {
            return Reply::error(502, format!("cannot resolve {key}"));
        };
        let connection = match self.mesh.connect_shell(address).await {
            Ok(connection) => connection,
            Err(error) => return Reply::error(502, format!("{node}: {error}")),
        };
        let reply = ask(&connection, line).await;
        connection.close(0u32.into(), b"done");
        match reply {
            Ok(reply) => reply,
            Err(error) => Reply::error(502, format!("{node}: {error}")),
        }
    }
}

/// Why a command sent to a node's shell got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No stream could be opened: the connection is lost or the node closed it.
    #[error("{0}")]
    Open(quinn::ConnectionError),
    /// The request or the answer frame failed (see [`wire::FrameError`]).
    #[error("{0}")]
    Frame(#[from] wire::FrameError),
    /// The node did not answer within [`COMMAND_TIMEOUT`] (transport; retry).
    #[error("no answer within {COMMAND_TIMEOUT:?}")]
    Timeout,
}

impl Classified for AskError {
    fn fault(&self) -> Fault {
        match self {
            AskError::Open(quinn::ConnectionError::ApplicationClosed(_)) => Fault::Peer,
            AskError::Open(_) | AskError::Timeout => Fault::Transport,
            AskError::Frame(error) => error.fault(),
        }
    }
}

/// Sends one command on `connection` and reads the answer.
pub async fn ask(connection: &quinn::Connection, line: &str) -> Result<Reply, AskError> {
    let mut receive = send_command(connection, line).await?;
    Ok(tokio::time::timeout(
        COMMAND_TIMEOUT + Duration::from_secs(1),
        wire::read::<Reply>(&mut receive, MAX_REPLY_BYTES),
    )
    .await
    .map_err(|_| AskError::Timeout)??)
}

/// Opens a stream on `connection` and sends `line`; the replies come on the returned half.
pub async fn send_command(
    connection: &quinn::Connection,
    line: &str,
) -> Result<quinn::RecvStream, AskError> {
    let (mut send, receive) = connection.open_bi().await.map_err(AskError::Open)?;
    let request = ShellRequest {
        line: line.to_string(),
    };
    wire::write(&mut send, &request, MAX_REQUEST_BYTES).await?;
    let _ = send.finish();
    Ok(receive)
}

async fn resolve(key: &str) -> Option<SocketAddr> {
    tokio::net::lookup_host(key).await.ok()?.next()
}

/// The actors of a registry tree, depth first, without their children.
fn flatten(node: &Value, out: &mut Vec<Value>) {
    let mut row = node.clone();
    if let Some(object) = row.as_object_mut() {
        object.remove("children");
    }
    out.push(row);
    for child in node["children"].as_array().into_iter().flatten() {
        flatten(child, out);
    }
}

impl ShellAcceptor for ShellServer {
    fn serve(&self, connection: quinn::Connection) -> BoxFuture<'static, ()> {
        Box::pin(self.clone().serve_connection(connection))
    }
}
