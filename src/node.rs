//! The composition root: from a loaded config to a running node, and back down.
//!
//! Start-up order: resolve identity → bind every listener (so a taken port fails before
//! anything runs) → start the core (actor tree, mesh, media: [`crate::node_core`]) →
//! serve. While serving, config reloads (SIGHUP, the API: [`crate::reload`]) are applied
//! one at a time; they open and close listeners here. Shutdown (SIGINT/SIGTERM): stop
//! accepting and drain HTTP, then stop the actor tree (children in reverse start order).
//! If the root supervisor gives up on its own, the node shuts down and exits with 4.

use std::sync::Arc;

use flotilla_otp::node::{NodeContext, NodeTeardown};
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::SupervisorMsg;
use ractor::ActorRef;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use flotilla_otp::core_workers::CoreWorkers;
use tokio::sync::mpsc;

use crate::config::LoadedConfig;
use crate::config::identity::NodeIdentity;
use crate::error::NodeError;
use crate::http::access::AccessPolicy;
use crate::http::api::ApiState;
use crate::http::api::router;
use crate::http::server::Listening;
use crate::http::transport::Transport;
use crate::http::{HttpLimits, serve};
use crate::node_core::{NodeCore, NodeEnv};
use crate::reload::changes::{ListenerKind, ListenerSpec};
use crate::reload::{
    ConfigOrigin, ReloadError, ReloadHandle, ReloadReport, ReloadRequest, Reloader,
};
use crate::rtmp::server::RtmpContext;
use crate::rtmp::server::RtmpTransport;
use crate::tls::CertificateStore;
use crate::tls::store::HTTPS_ALPN;

/// A node whose listeners are bound and whose actor tree runs.
pub struct Node {
    context: NodeContext,
    /// The TCP listeners of the config, bound, in config order.
    bound: Vec<Bound>,
    /// What serving a TCP listener takes (reloads open new ones with it).
    factory: ListenerFactory,
    /// The TLS identity of the https and rtmps listeners (none without them).
    certificates: Option<Arc<CertificateStore>>,
    srt: Vec<crate::srt::listener::SrtListener>,
    root: ActorRef<SupervisorMsg>,
    root_task: JoinHandle<()>,
    reloader: Reloader,
    reload_queue: mpsc::Receiver<ReloadRequest>,
    /// Ends the node's registry when the node is dropped.
    _teardown: NodeTeardown,
}

/// A bound TCP listener and what the config says of it.
struct Bound {
    spec: ListenerSpec,
    listener: TcpListener,
}

/// A TCP listener being served, and how to stop it.
struct Serving {
    spec: ListenerSpec,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What serving an HTTP or RTMP listener takes: shared by the listeners of the start
/// and those a reload opens.
#[derive(Clone)]
struct ListenerFactory {
    state: ApiState,
    rtmp: RtmpContext,
    fast_path: Option<crate::http::fast_path::FastPath>,
    https: Option<Arc<rustls::ServerConfig>>,
    rtmps: Option<Arc<rustls::ServerConfig>>,
    proxies: Arc<[crate::config::values::Cidr]>,
    first_https_port: Option<u16>,
}

impl ListenerFactory {
    /// Binds `spec`'s address.
    async fn bind(&self, spec: ListenerSpec) -> Result<Bound, NodeError> {
        let listener = bind(spec.address, spec.kind.name()).await?;
        Ok(Bound { spec, listener })
    }

    /// Whether a listener of `kind` can be served (TLS ones need the identity loaded at
    /// start).
    fn can_serve(&self, kind: ListenerKind) -> bool {
        match kind {
            ListenerKind::Https => self.https.is_some(),
            ListenerKind::Rtmps => self.rtmps.is_some(),
            ListenerKind::Http | ListenerKind::Rtmp => true,
        }
    }

    /// Serves `bound` until its stop is sent (a reload removed it, or the node stops).
    fn serve(&self, runtime: &Runtime, connections: &Arc<CoreWorkers>, bound: Bound) -> Serving {
        let (stop, stopped) = watch::channel(false);
        let Bound { spec, listener } = bound;
        let task = match (&spec.kind, &spec.http) {
            (ListenerKind::Http | ListenerKind::Https, Some(http)) => {
                let tls = match spec.kind {
                    ListenerKind::Https => self.https.clone(),
                    _ => None,
                };
                let listening = Listening {
                    router: router(self.state.clone(), http.serves_api()),
                    fast: self.fast_path.clone(),
                    transport: Transport {
                        tls,
                        proxies: self.proxies.clone(),
                        redirect_https_port: self
                            .first_https_port
                            .filter(|_| http.redirect_https == Some(true)),
                    },
                    limits: HttpLimits::default(),
                    open: self.state.stats.connections().clone(),
                };
                let task = serve(
                    runtime.clone(),
                    connections.clone(),
                    listener,
                    listening,
                    stopped,
                );
                runtime.spawn("http-listener", task)
            }
            _ => {
                let tls = match spec.kind {
                    ListenerKind::Rtmps => self.rtmps.clone(),
                    _ => None,
                };
                let transport = RtmpTransport {
                    tls,
                    proxies: self.proxies.clone(),
                    open: self.state.stats.connections().clone(),
                };
                let task =
                    crate::rtmp::server::serve(self.rtmp.clone(), listener, transport, stopped);
                runtime.spawn("rtmp-listener", task)
            }
        };
        Serving { spec, stop, task }
    }
}

impl Node {
    /// Binds every listener of `loaded` and starts the actor tree.
    pub async fn start(
        loaded: &LoadedConfig,
        identity: NodeIdentity,
        runtime: Runtime,
    ) -> Result<Node, NodeError> {
        let config = &loaded.config;
        let access = AccessPolicy::from_config(config);
        // The certificate first: a node asked for TLS without one does not start at all.
        let certificates = match config.https.is_empty() && config.rtmps.is_empty() {
            true => None,
            false => {
                let (certificate, key) = loaded.tls_files();
                Some(CertificateStore::load(&certificate, &key)?)
            }
        };
        let mut bound = Vec::new();
        for spec in ListenerSpec::of(config) {
            let listener = bind(spec.address, spec.kind.name()).await?;
            bound.push(Bound { spec, listener });
        }
        let core = NodeCore::start(loaded, identity, runtime, NodeEnv::system()).await?;
        let NodeCore {
            state,
            rtmp: rtmp_context,
            root,
            root_task,
            teardown,
            reloader,
            reload_queue,
        } = core;
        let context = state.node.clone();
        let mut srt = Vec::new();
        for listen in &config.srt {
            let address = listen.socket_addr();
            let listener = crate::srt::listener::SrtListener::bind(
                address,
                &rtmp_context,
                reloader.srt_rules.clone(),
            )
            .map_err(|source| NodeError::Srt { address, source })?;
            srt.push(listener);
        }
        // The shell answers through the API (every route), over the mesh endpoint.
        if let Some(mesh) = &state.mesh {
            let shell = crate::shell::server::ShellServer::new(
                context.runtime.clone(),
                router(state.clone(), true),
                mesh.clone(),
                config.shell_allowed_from.clone(),
                config.edit_auth.clone(),
                config.view_auth.clone(),
            );
            mesh.set_shell(Arc::new(shell));
        }
        let factory = ListenerFactory {
            fast_path: crate::http::fast_path::FastPath::new(
                state.balancers.clone(),
                config.trusted_proxies.clone(),
                crate::http::cors::Cors::from_config(&config.cors_allow_origin),
            ),
            https: certificates
                .as_ref()
                .map(|store| store.server_config(&HTTPS_ALPN)),
            rtmps: certificates.as_ref().map(|store| store.server_config(&[])),
            proxies: config.trusted_proxies.clone().into(),
            first_https_port: config.https.first().map(|l| l.listen.port),
            state,
            rtmp: rtmp_context,
        };
        let serves_api = config
            .http
            .iter()
            .chain(&config.https)
            .any(|l| l.serves_api());
        if access.is_open() && serves_api {
            tracing::warn!(
                "the HTTP API has no edit_auth/view_auth: anyone who reaches the port can read it"
            );
        }
        Ok(Node {
            context,
            bound,
            factory,
            certificates,
            srt,
            root,
            root_task,
            reloader,
            reload_queue,
            _teardown: teardown,
        })
    }

    /// Reloads read `origin` (the node's config file) again.
    pub fn set_config_origin(&mut self, origin: ConfigOrigin) {
        self.reloader.origin = origin;
    }

    /// Where reloads are asked for (SIGHUP, the API).
    pub fn reload_handle(&self) -> ReloadHandle {
        self.factory.state.reload.clone()
    }

    /// The addresses actually bound (ports resolved) of the HTTP listeners, in config
    /// order.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.bound
            .iter()
            .filter(|bound| bound.spec.http.is_some())
            .filter_map(|bound| bound.listener.local_addr().ok())
            .collect()
    }

    /// The TLS identity of the https and rtmps listeners, if the node has any: SIGHUP
    /// reloads it.
    pub fn certificates(&self) -> Option<Arc<CertificateStore>> {
        self.certificates.clone()
    }

    /// The node's running streams (the benchmarks watch one from inside).
    pub fn directory(&self) -> &crate::media::directory::Directory {
        &self.factory.rtmp.directory
    }

    /// The node's context (registry, runtime).
    pub fn context(&self) -> &NodeContext {
        &self.context
    }

    /// Serves until `shutdown` turns true (or the tree gives up), then stops everything.
    /// Config reloads are applied here, one at a time, between the two.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        let runtime = self.context.runtime.clone();
        tracing::info!(hostname = %self.context.name, version = crate::build_info::VERSION, listeners = ?self.local_addrs(), actors = self.context.registry.len(), "node started");
        let events = self.factory.state.events.clone();
        events.emit(crate::events::Event::new(
            "server_started",
            crate::config::model::EventLevel::Notice,
        ));
        let (stop_listeners, listeners_stopped) = watch::channel(false);
        // One connection worker per core (see flotilla_otp::core_workers).
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let connections =
            Arc::new(
                runtime
                    .core_workers("http", cores)
                    .map_err(|source| NodeError::Local {
                        context: "cannot start the http connection workers".into(),
                        source,
                    })?,
            );
        let mut serving: Vec<Serving> = std::mem::take(&mut self.bound)
            .into_iter()
            .map(|bound| self.factory.serve(&runtime, &connections, bound))
            .collect();
        if let Some(store) = self.certificates.clone() {
            runtime.spawn(
                "tls-certificate-watch",
                store.watch(listeners_stopped.clone()),
            );
        }
        let mut other_tasks = Vec::new();
        for listener in std::mem::take(&mut self.srt) {
            let task = listener.serve(self.factory.rtmp.clone(), listeners_stopped.clone());
            other_tasks.push(runtime.spawn("srt-listener", task));
        }
        let mut root_task = self.root_task;
        let tree_failed = loop {
            tokio::select! {
                () = stop_asked(&mut shutdown) => break false,
                _ = &mut root_task => break true,
                Some(request) = self.reload_queue.recv() => {
                    let outcome = reload(&self.reloader, &self.factory, request.origin).await;
                    let outcome = outcome.map(|(report, added, removed)| {
                        serving.retain_mut(|running| {
                            let closing = removed.contains(&running.spec);
                            if closing {
                                let _ = running.stop.send(true);
                            }
                            !closing
                        });
                        for bound in added {
                            serving.push(self.factory.serve(&runtime, &connections, bound));
                        }
                        report
                    });
                    if let Some(reply) = request.reply {
                        let _ = reply.send(outcome);
                    }
                }
            }
        };
        let _ = stop_listeners.send(true);
        for running in &serving {
            let _ = running.stop.send(true);
        }
        for task in serving.into_iter().map(|s| s.task).chain(other_tasks) {
            if let Err(error) = task.await {
                tracing::error!(%error, "a listener task failed");
            }
        }
        // The logs get every line up to here, flushed (sessions still open end now), and
        // the event sinks what they can deliver in a bounded time.
        let state = &self.factory.state;
        events.emit(crate::events::Event::new(
            "server_stopping",
            crate::config::model::EventLevel::Notice,
        ));
        events.drain(EVENT_DRAIN_GRACE).await;
        state.sessions.close_log("node stopped");
        if let Some(log) = &state.access_log {
            log.close();
        }
        if tree_failed {
            tracing::error!("the root supervisor gave up; the node stops");
            return Err(NodeError::TreeGaveUp);
        }
        self.root.stop(Some("shutdown".into()));
        let _ = root_task.await;
        tracing::info!("node stopped");
        Ok(())
    }
}

/// One reload: prepare (read, check, compare), bind the new listeners, commit. Returns
/// the report with the listeners to open and those to close; logs the outcome.
async fn reload(
    reloader: &Reloader,
    factory: &ListenerFactory,
    origin: &'static str,
) -> Result<(ReloadReport, Vec<Bound>, Vec<ListenerSpec>), ReloadError> {
    let runtime = &factory.state.node.runtime;
    let started = runtime.now();
    let prepared = reloader.prepare().inspect_err(|error| {
        tracing::error!(origin, "{error}");
    })?;
    let mut added = Vec::new();
    let mut unserved = Vec::new();
    for spec in &prepared.changes.listeners_added {
        if !factory.can_serve(spec.kind) {
            unserved.push(format!(
                "{} (no TLS identity was loaded at start)",
                spec.label()
            ));
            continue;
        }
        match factory.bind(spec.clone()).await {
            Ok(bound) => added.push(bound),
            Err(NodeError::Bind {
                address,
                purpose,
                source,
            }) => {
                let error = ReloadError::Bind {
                    address,
                    purpose,
                    source,
                };
                tracing::error!(origin, "{error}");
                return Err(error);
            }
            Err(other) => {
                let error = ReloadError::Config(other.to_string());
                tracing::error!(origin, "{error}");
                return Err(error);
            }
        }
    }
    let removed = prepared.changes.listeners_removed.clone();
    let mut report = reloader.commit(prepared).await;
    factory.state.events.emit(
        crate::events::Event::new("config_reloaded", crate::config::model::EventLevel::Notice)
            .with("revision", report.revision)
            .with("origin", origin)
            .with(
                "streams",
                serde_json::to_value(&report.streams).unwrap_or_default(),
            )
            .with("restart_required", report.restart_required.clone()),
    );
    report.restart_required.extend(unserved);
    report
        .listeners_opened
        .retain(|label| added.iter().any(|bound| &bound.spec.label() == label));
    let elapsed_ms = runtime.now().duration_since(started).as_millis();
    tracing::info!(
        origin,
        revision = report.revision,
        streams = %report.streams.summary(),
        listeners_opened = ?report.listeners_opened,
        listeners_closed = ?report.listeners_closed,
        restart_required = ?report.restart_required,
        elapsed_ms,
        "config reloaded"
    );
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    Ok((report, added, removed))
}

/// How long a stopping node keeps delivering events to its webhooks.
const EVENT_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves once `shutdown` turns true (its guard never lives across an await).
async fn stop_asked(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Binds a TCP listener of `purpose` (named in the error).
async fn bind(
    address: std::net::SocketAddr,
    purpose: &'static str,
) -> Result<TcpListener, NodeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Bind {
            address,
            purpose,
            source,
        })
}

/// The process signals a node answers. Installed before the node starts, so that no
/// signal arrives while the default action (terminate) is still in force.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes over SIGTERM, SIGINT and SIGHUP (needs a tokio runtime).
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves with the signal's name when the process is asked to stop (SIGINT or
    /// SIGTERM). SIGHUP — what `systemctl reload` and operators' habits send — never
    /// stops the node: it re-reads the TLS certificate (`certificates`) and asks for a
    /// config reload (`reloads`; the outcome is logged).
    pub async fn termination(
        &mut self,
        certificates: Option<Arc<CertificateStore>>,
        reloads: ReloadHandle,
    ) -> &'static str {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return "SIGTERM",
                _ = self.interrupt.recv() => return "SIGINT",
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the TLS certificate and the config");
                    if let Some(store) = &certificates {
                        store.reload_logged(true);
                    }
                    reloads.request("SIGHUP");
                }
            }
        }
    }
}
