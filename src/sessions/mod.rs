//! Viewer sessions: who watches what, for how long, how many bytes; `max_sessions` (of
//! the node and of each stream), play tokens (`auth_token`, `auto_token`,
//! `no_auto_token`, spec §7.3), `protocols`, and play authorization through the node's
//! [`Gate`] (asked once per session, see `crate::auth::gate`).
//!
//! The decision to admit a viewer is taken on the request path from shared state (the
//! session table), never by asking an actor. Each admitted session also gets an actor
//! under `node/sessions/<id>` (started fire-and-forget), so the supervision tree and the
//! shell show every viewer; an HLS session's actor closes it after
//! [`HLS_SESSION_TIMEOUT_MS`] without requests.
//!
//! Keys (`key`): a session with a token is (stream, token); without one, HLS requests
//! are grouped by (stream, IP, user agent), while an HTTP-MPEG-TS or RTMP connection is
//! a session of its own. A request finds its session under the table's read lock with
//! the request's own strings: requests never wait on each other, nothing is allocated
//! for a session that exists, and only opening or closing a session takes the write
//! lock.

pub mod key;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use flotilla_otp::node::NodeContext;
use flotilla_otp::registry::ActorPath;
use flotilla_otp::supervisor::{Restart, SupervisorMsg, supervisor_at};
use flotilla_otp::worker::{Handle, Worker, worker_child};
use ractor::ActorProcessingErr;

use crate::auth::{Authorization, DENIED, Gate, PlayDenied, PlayRequest};
use crate::config::Config;
use crate::config::model::AutoToken;
use crate::live::Live;
use crate::media::directory::Directory;
use key::{Identity, IdentityView, KeyView, SessionKey};

/// An HLS session without a request for this long is over.
pub const HLS_SESSION_TIMEOUT_MS: u64 = 30_000;
/// How often an HLS or DASH session's actor checks whether it went idle.
const SESSION_TICK: Duration = Duration::from_secs(5);
/// Longest token accepted (real tokens are < 100 bytes).
pub const MAX_TOKEN_BYTES: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HLS in MPEG-TS and LL-HLS in CMAF.
    Hls,
    /// MPEG-DASH.
    Dash,
    Mpegts,
    Rtmp,
    /// WebRTC play (WHEP): one peer connection.
    Webrtc,
}

impl Protocol {
    /// A session of many short requests (playlists, segments), not one connection: it
    /// lasts while requests keep coming.
    pub fn by_requests(self) -> bool {
        matches!(self, Protocol::Hls | Protocol::Dash)
    }
}

/// One viewer session.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub stream: String,
    pub protocol: Protocol,
    pub ip: Option<IpAddr>,
    pub user_agent: String,
    pub token: Option<String>,
    pub opened_ms: u64,
    pub last_seen_ms: AtomicU64,
    pub bytes: AtomicU64,
    /// The session's play authorization (streams with `on_play`/`auth`).
    pub authorization: tokio::sync::Mutex<Authorization>,
    /// Who the viewer is: with `stream`, its key in the table.
    identity: Identity,
}

impl Session {
    /// Its key in the table, borrowed.
    fn key_view(&self) -> KeyView<'_> {
        KeyView {
            stream: &self.stream,
            identity: self.identity.view(),
        }
    }

    /// Records activity of `bytes` at `now_ms`.
    pub fn touch(&self, now_ms: u64, bytes: u64) {
        self.last_seen_ms.fetch_max(now_ms, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The session as an event (`play_opened`, `play_closed`), with Flussonic's session
    /// fields.
    fn event(&self, name: &'static str, now_ms: u64) -> crate::events::Event {
        let mut event = crate::events::Event::new(name, crate::config::model::EventLevel::Info)
            .media(&self.stream)
            .with("id", self.id.as_str())
            .with("proto", crate::auth::access::protocol_name(self.protocol))
            .with("ip", self.ip.map(|ip| ip.to_string()))
            .with("user_agent", self.user_agent.as_str())
            .with("token", self.token.clone())
            .with("opened_at", self.opened_ms);
        if name == "play_closed" {
            event = event
                .with("closed_at", now_ms)
                .with("duration", now_ms.saturating_sub(self.opened_ms))
                .with("bytes", self.bytes.load(Ordering::Relaxed));
        }
        event
    }

    /// The session's line in the session log: one JSON object.
    fn log_line(&self, now_ms: u64, reason: &str) -> String {
        let rfc3339 = crate::format::rfc3339;
        serde_json::json!({
            "id": self.id,
            "stream": self.stream,
            "protocol": crate::auth::access::protocol_name(self.protocol),
            "client": self.ip.map(|ip| ip.to_string()),
            "user_agent": self.user_agent,
            "token": self.token,
            "opened_at": rfc3339(self.opened_ms),
            "closed_at": rfc3339(now_ms),
            "duration_ms": now_ms.saturating_sub(self.opened_ms),
            "bytes": self.bytes.load(Ordering::Relaxed),
            "end": reason,
        })
        .to_string()
    }

    fn summary(&self, now_ms: u64) -> String {
        format!(
            "{:?} {} from {}, {} s, {} bytes",
            self.protocol,
            self.stream,
            self.ip.map_or_else(|| "?".into(), |ip| ip.to_string()),
            now_ms.saturating_sub(self.opened_ms) / 1000,
            self.bytes.load(Ordering::Relaxed)
        )
    }
}

/// Why a viewer was refused (each is a 403 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a play token is required (`{0}` query parameter)")]
    TokenRequired(String),
    #[error("the token is malformed")]
    BadToken,
    #[error("max_sessions ({0}) reached on this server")]
    MaxSessions(u32),
    #[error("max_sessions ({0}) of this stream reached")]
    StreamMaxSessions(u32),
    #[error("protocol {0} is not allowed for this stream")]
    ProtocolNotAllowed(&'static str),
    /// The stream's play policy refused (the reason is in the node's log only).
    #[error("{DENIED}")]
    Denied,
    /// The stream's play policy sends the viewer to this URL.
    #[error("sent to {0}")]
    Redirect(String),
}

/// What a viewer presented.
#[derive(Debug, Clone)]
pub struct Viewer<'a> {
    pub stream: &'a str,
    pub protocol: Protocol,
    pub ip: Option<IpAddr>,
    pub user_agent: &'a str,
    /// The raw query string, where the token is.
    pub query: Option<&'a str>,
    /// The page the player is on (HTTP Referer), for authorization backends.
    pub referer: Option<&'a str>,
}

/// The node's sessions.
#[derive(Clone)]
pub struct SessionTable {
    inner: Arc<RwLock<hashbrown::HashMap<SessionKey, Arc<Session>>>>,
    node: NodeContext,
    directory: Directory,
    /// Token and limit settings of the config: replaced by a reload.
    settings: Live<SessionSettings>,
    gate: Arc<Gate>,
    /// Where ended sessions are written (`session_log`).
    log: Option<crate::logfile::LineLog>,
    /// Where `play_opened`/`play_closed` go.
    events: Option<crate::events::EventBus>,
}

/// The node-wide session settings of the config.
#[derive(Debug, Clone)]
struct SessionSettings {
    token_parameter: String,
    auto_token: AutoToken,
    max_sessions: Option<u32>,
}

impl SessionSettings {
    fn of(config: &Config) -> SessionSettings {
        SessionSettings {
            token_parameter: config
                .auth_token
                .clone()
                .unwrap_or_else(|| crate::defaults::AUTH_TOKEN_PARAMETER.into()),
            // Flussonic's configuration reference makes `blank` the default.
            auto_token: config.auto_token.unwrap_or(AutoToken::Blank),
            max_sessions: config.max_sessions,
        }
    }
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionTable({} sessions)", self.len())
    }
}

fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            _ => None,
        })
}

impl SessionTable {
    pub fn new(
        config: &Config,
        node: NodeContext,
        directory: Directory,
        gate: Arc<Gate>,
    ) -> SessionTable {
        SessionTable {
            inner: Arc::default(),
            node,
            directory,
            settings: Live::new(SessionSettings::of(config)),
            gate,
            log: None,
            events: None,
        }
    }

    /// Tells `events` of every session opened and closed.
    pub fn with_events(mut self, events: crate::events::EventBus) -> SessionTable {
        self.events = events.is_active().then_some(events);
        self
    }

    /// Writes every ended session to `log` (`session_log`).
    pub fn with_log(mut self, log: Option<crate::logfile::LineLog>) -> SessionTable {
        self.log = log;
        self
    }

    /// Session-log lines dropped because the disk fell behind (`None`: no session log).
    pub fn log_dropped(&self) -> Option<u64> {
        self.log.as_ref().map(crate::logfile::LineLog::dropped)
    }

    /// Writes the sessions still open as ended by `reason` (the node stops) and closes
    /// the session log, flushing it.
    pub fn close_log(&self, reason: &str) {
        let Some(log) = &self.log else {
            return;
        };
        let now_ms = self.node.runtime.wall_clock_ms();
        for session in self.all() {
            log.write(session.log_line(now_ms, reason));
        }
        log.close();
    }

    /// Takes a reloaded config's settings and access rules (`rules`, resolved from it)
    /// for the sessions that open from now on; open sessions keep their authorization.
    pub fn reconfigure(&self, config: &Config, rules: crate::auth::access::AccessRules) {
        self.settings.replace(SessionSettings::of(config));
        self.gate.replace_rules(rules);
    }

    /// The query parameter that carries play tokens (`auth_token`).
    pub fn token_parameter(&self) -> String {
        self.settings.get().token_parameter.clone()
    }

    /// The node's access rules.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Sessions watching `stream` now, over any protocol.
    pub fn count_stream(&self, stream: &str) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|session| session.stream == stream)
            .count()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions watching `stream` over `protocol` now.
    pub fn count(&self, stream: &str, protocol: Protocol) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|session| session.stream == stream && session.protocol == protocol)
            .count()
    }

    /// Every session, for the API.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Admits a viewer: its existing session (HLS) or a new one, or a refusal.
    pub fn admit(&self, viewer: &Viewer<'_>) -> Result<Arc<Session>, Refused> {
        let now_ms = self.node.runtime.wall_clock_ms();
        let settings = self.settings.get();
        let access = self.gate.access(viewer.stream);
        if !access.protocols.allows(viewer.protocol) {
            return Err(Refused::ProtocolNotAllowed(
                crate::auth::access::protocol_name(viewer.protocol),
            ));
        }
        let presented =
            query_value(viewer.query, &settings.token_parameter).filter(|t| !t.is_empty());
        if presented.is_some_and(|t| t.len() > MAX_TOKEN_BYTES) {
            return Err(Refused::BadToken);
        }
        // A presented token names the session; a generated one cannot (the player does not
        // know it), so HLS requests then group by client, and connections stand alone.
        let identity = match presented {
            Some(token) => IdentityView::Token(token),
            None if matches!(settings.auto_token, AutoToken::Disabled) => {
                return Err(Refused::TokenRequired(settings.token_parameter.clone()));
            }
            None if viewer.protocol.by_requests() => {
                IdentityView::Client(viewer.ip, viewer.user_agent)
            }
            None => IdentityView::Connection(self.node.runtime.random_u64()),
        };
        let view = KeyView {
            stream: viewer.stream,
            identity,
        };
        if let Some(existing) = self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&view)
        {
            existing.touch(now_ms, 0);
            return Ok(existing.clone());
        }
        let key = view.to_key();
        let refusal_key = key.identity.refusal_key();
        if access.play.is_some()
            && let Some(refusal_key) = &refusal_key
            && self.gate.refused(viewer.stream, refusal_key, now_ms)
        {
            return Err(Refused::Denied);
        }
        let token = match (presented, settings.auto_token) {
            (Some(token), _) => Some(token.to_string()),
            (None, AutoToken::Uuid) => Some(format!(
                "{:032x}",
                u128::from(self.node.runtime.random_u64()) << 64
                    | u128::from(self.node.runtime.random_u64())
            )),
            (None, _) => None,
        };
        let mut sessions = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = sessions.get(&view) {
            return Ok(existing.clone());
        }
        if let Some(max) = settings.max_sessions
            && sessions.len() >= max as usize
        {
            return Err(Refused::MaxSessions(max));
        }
        if let Some(max) = access.max_sessions
            && sessions
                .values()
                .filter(|session| session.stream == viewer.stream)
                .count()
                >= max as usize
        {
            return Err(Refused::StreamMaxSessions(max));
        }
        let session = Arc::new(Session {
            id: format!("{:016x}", self.node.runtime.random_u64()),
            stream: viewer.stream.to_string(),
            protocol: viewer.protocol,
            ip: viewer.ip,
            user_agent: viewer.user_agent.chars().take(256).collect(),
            token,
            opened_ms: now_ms,
            last_seen_ms: AtomicU64::new(now_ms),
            bytes: AtomicU64::new(0),
            authorization: tokio::sync::Mutex::default(),
            identity: key.identity.clone(),
        });
        sessions.insert(key, session.clone());
        drop(sessions);
        if let Some(live) = self.directory.get(viewer.stream) {
            live.counters.clients.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(events) = &self.events {
            events.emit(session.event("play_opened", now_ms));
        }
        self.start_actor(session.clone());
        Ok(session)
    }

    /// Admits `viewer` and authorizes its first request: the session, or why not.
    pub async fn admit_authorized(&self, viewer: &Viewer<'_>) -> Result<Arc<Session>, Refused> {
        let session = self.admit(viewer)?;
        self.authorize(&session, viewer.referer, viewer.query)
            .await
            .map(|()| session)
    }

    /// Authorizes a request of `session` under its stream's play policy, if it has one:
    /// the session's cached answer, or the backend's (once per session). A refused
    /// session is closed and remembered, so its next requests are refused at once.
    pub async fn authorize(
        &self,
        session: &Arc<Session>,
        referer: Option<&str>,
        query: Option<&str>,
    ) -> Result<(), Refused> {
        let access = self.gate.access(&session.stream);
        let Some(policy) = &access.play else {
            return Ok(());
        };
        let now_ms = self.node.runtime.wall_clock_ms();
        let request = PlayRequest {
            stream: &session.stream,
            protocol: session.protocol,
            session_id: &session.id,
            ip: session.ip,
            token: session.token.as_deref(),
            user_agent: &session.user_agent,
            referer,
            query,
            stream_clients: self.count_stream(&session.stream),
            total_clients: self.len(),
        };
        let denied = match self
            .gate
            .authorize_play(policy, &session.authorization, &request, now_ms)
            .await
        {
            Ok(()) => return Ok(()),
            Err(denied) => denied,
        };
        if let Some(key) = session.identity.refusal_key() {
            self.gate.remember_refused(&session.stream, &key, now_ms);
        }
        self.close(session);
        match denied {
            PlayDenied::Denied { reason } => {
                tracing::info!(stream = %session.stream, session = %session.id, ip = ?session.ip, protocol = ?session.protocol, %reason, "viewer refused");
                Err(Refused::Denied)
            }
            PlayDenied::Redirect(location) => Err(Refused::Redirect(location)),
        }
    }

    /// Ends a session (its connection closed).
    pub fn close(&self, session: &Session) {
        let removed = {
            let mut sessions = self.inner.write().unwrap_or_else(|p| p.into_inner());
            // Only this session: another may hold its key since (it closed before).
            let current = sessions
                .get(&session.key_view())
                .is_some_and(|current| current.id == session.id);
            current
                .then(|| sessions.remove(&session.key_view()))
                .flatten()
        };
        if removed.is_some() {
            if let Some(events) = &self.events {
                events.emit(session.event("play_closed", self.node.runtime.wall_clock_ms()));
            }
            if let Some(log) = &self.log {
                log.write(session.log_line(self.node.runtime.wall_clock_ms(), "closed"));
            }
            if let Some(live) = self.directory.get(&session.stream) {
                live.counters.clients.fetch_sub(1, Ordering::Relaxed);
            }
            self.stop_actor(&session.id);
        }
    }

    fn sessions_supervisor(&self) -> Option<ractor::ActorRef<SupervisorMsg>> {
        supervisor_at(&self.node, &ActorPath::root().child("sessions"))
    }

    /// Starts the session's actor without waiting for it (the request goes on).
    fn start_actor(&self, session: Arc<Session>) {
        let Some(supervisor) = self.sessions_supervisor() else {
            return;
        };
        let actor = SessionActor {
            table: self.clone(),
        };
        let id = session.id.clone();
        let spec = worker_child(id, actor, move || session.clone()).restart(Restart::Temporary);
        let (reply, _ignored) = ractor::concurrency::oneshot();
        let _ = supervisor.cast(SupervisorMsg::StartChild(spec, reply.into()));
    }

    fn stop_actor(&self, id: &str) {
        if let Some(supervisor) = self.sessions_supervisor() {
            let (reply, _ignored) = ractor::concurrency::oneshot();
            let _ = supervisor.cast(SupervisorMsg::TerminateChild(id.to_string(), reply.into()));
        }
    }
}

/// The actor of one session: shows it in the tree and ends idle HLS sessions.
#[derive(Clone)]
pub struct SessionActor {
    table: SessionTable,
}

/// Session actor messages.
pub enum SessionMsg {
    Tick,
}

impl Worker for SessionActor {
    type Msg = SessionMsg;
    type State = Arc<Session>;
    type Args = Arc<Session>;

    fn kind(&self) -> &'static str {
        "session"
    }

    async fn init(
        &self,
        me: &Handle<SessionMsg>,
        args: Self::Args,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Only a session of requests can go idle; a connection's ends with it (and so
        // costs no timer while it plays).
        if args.protocol.by_requests() {
            me.send_interval(SESSION_TICK, || SessionMsg::Tick);
        }
        Ok(args)
    }

    async fn handle(
        &self,
        me: &Handle<SessionMsg>,
        _message: SessionMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let session = &*state;
        let now_ms = me.runtime().wall_clock_ms();
        let idle_ms = now_ms.saturating_sub(session.last_seen_ms.load(Ordering::Relaxed));
        if session.protocol.by_requests() && idle_ms > HLS_SESSION_TIMEOUT_MS {
            self.table.close(session);
            me.stop(Some("normal".into()));
        }
        Ok(())
    }

    /// Written when asked: a playing session's bytes and duration change without messages.
    fn summary_probe(&self, state: &Self::State) -> Option<flotilla_otp::registry::SummaryProbe> {
        let session = state.clone();
        let runtime = self.table.node.runtime.clone();
        Some(Arc::new(move || session.summary(runtime.wall_clock_ms())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use flotilla_otp::rt::Runtime;

    fn table(config: &str) -> SessionTable {
        let config = load_str("t", config).unwrap().config;
        let runtime = Runtime::deterministic(3, 1_000);
        let gate = Gate::from_config(&config, runtime.clone(), None).unwrap();
        SessionTable::new(
            &config,
            NodeContext::new("n", runtime),
            Directory::default(),
            gate,
        )
    }

    fn hls<'a>(query: Option<&'a str>, agent: &'a str) -> Viewer<'a> {
        Viewer {
            stream: "cam",
            protocol: Protocol::Hls,
            ip: Some("127.0.0.1".parse().unwrap()),
            user_agent: agent,
            query,
            referer: None,
        }
    }

    #[test]
    fn protocols_and_the_streams_max_sessions_refuse_new_viewers() {
        let no_hls = table("stream cam { input publish://; protocols -hls; }");
        assert_eq!(
            no_hls.admit(&hls(None, "vlc")).unwrap_err(),
            Refused::ProtocolNotAllowed("hls")
        );
        let table = table("stream cam { input publish://; max_sessions 1; }");
        let first = table.admit(&hls(None, "vlc")).unwrap();
        assert_eq!(table.admit(&hls(None, "vlc")).unwrap().id, first.id);
        assert_eq!(
            table.admit(&hls(None, "safari")).unwrap_err(),
            Refused::StreamMaxSessions(1)
        );
        table.close(&first);
        assert!(table.admit(&hls(None, "safari")).is_ok());
    }

    #[test]
    fn hls_requests_group_into_one_session_per_viewer() {
        let table = table("http 80;");
        let a = table.admit(&hls(None, "vlc")).unwrap();
        let again = table.admit(&hls(None, "vlc")).unwrap();
        assert_eq!(a.id, again.id);
        let other = table.admit(&hls(None, "safari")).unwrap();
        assert_ne!(a.id, other.id);
        let by_token = table.admit(&hls(Some("token=abc"), "vlc")).unwrap();
        assert_ne!(by_token.id, a.id);
        assert_eq!(
            table
                .admit(&hls(Some("x=1&token=abc"), "other"))
                .unwrap()
                .id,
            by_token.id
        );
        assert_eq!(table.len(), 3);
        table.close(&a);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn no_auto_token_requires_a_token() {
        let table = table("no_auto_token; auth_token key;");
        assert_eq!(
            table.admit(&hls(None, "vlc")).unwrap_err(),
            Refused::TokenRequired("key".into())
        );
        assert_eq!(
            table.admit(&hls(Some("token=abc"), "vlc")).unwrap_err(),
            Refused::TokenRequired("key".into())
        );
        assert!(table.admit(&hls(Some("key=abc"), "vlc")).is_ok());
        let long = format!("key={}", "x".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            table.admit(&hls(Some(&long), "vlc")).unwrap_err(),
            Refused::BadToken
        );
    }

    #[test]
    fn max_sessions_caps_new_viewers_only() {
        let table = table("max_sessions 2;");
        table.admit(&hls(None, "a")).unwrap();
        table.admit(&hls(None, "b")).unwrap();
        assert_eq!(
            table.admit(&hls(None, "c")).unwrap_err(),
            Refused::MaxSessions(2)
        );
        assert!(
            table.admit(&hls(None, "a")).is_ok(),
            "an existing session continues"
        );
    }

    #[test]
    fn auto_token_uuid_gives_each_connection_a_token() {
        let table = table("auto_token uuid;");
        let session = table.admit(&hls(None, "vlc")).unwrap();
        assert_eq!(session.token.as_ref().map(String::len), Some(32));
    }
}
