//! The composition root: from a loaded config to a running node, and back down.
//!
//! Start-up order: resolve identity → bind every listener (so a taken port fails before
//! anything runs) → start the core (actor tree, mesh, media: [`crate::node_core`]) →
//! serve. Shutdown (SIGINT/SIGTERM): stop
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

use crate::config::LoadedConfig;
use crate::config::identity::NodeIdentity;
use crate::error::NodeError;
use crate::http::access::AccessPolicy;
use crate::http::api::router;
use crate::http::server::Listening;
use crate::http::transport::Transport;
use crate::http::{HttpLimits, serve};
use crate::node_core::{NodeCore, NodeEnv};
use crate::rtmp::server::RtmpContext;
use crate::rtmp::server::RtmpTransport;
use crate::tls::CertificateStore;
use crate::tls::store::HTTPS_ALPN;

/// A node whose listeners are bound and whose actor tree runs.
pub struct Node {
    context: NodeContext,
    listeners: Vec<(TcpListener, Listening)>,
    rtmp: Vec<(TcpListener, RtmpTransport)>,
    /// The TLS identity of the https and rtmps listeners (none without them).
    certificates: Option<Arc<CertificateStore>>,
    rtmp_context: RtmpContext,
    srt: Vec<crate::srt::listener::SrtListener>,
    root: ActorRef<SupervisorMsg>,
    root_task: JoinHandle<()>,
    /// Ends the node's registry when the node is dropped.
    _teardown: NodeTeardown,
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
        let https_config = certificates
            .as_ref()
            .map(|store| store.server_config(&HTTPS_ALPN));
        let rtmps_config = certificates.as_ref().map(|store| store.server_config(&[]));
        let proxies: Arc<[crate::config::values::Cidr]> = config.trusted_proxies.clone().into();
        let first_https_port = config.https.first().map(|l| l.listen.port);
        let mut bound = Vec::new();
        let plain = config.http.iter().map(|l| (l, "http", None));
        let tls = config
            .https
            .iter()
            .map(|l| (l, "https", https_config.clone()));
        for (http, purpose, tls) in plain.chain(tls) {
            let listener = bind(http.listen.socket_addr(), purpose).await?;
            let transport = Transport {
                tls,
                proxies: proxies.clone(),
                redirect_https_port: first_https_port.filter(|_| http.redirect_https == Some(true)),
            };
            bound.push((listener, http.serves_api(), transport));
        }
        let mut rtmp = Vec::new();
        let plain = config.rtmp.iter().map(|l| (l, "rtmp", None));
        let tls = config
            .rtmps
            .iter()
            .map(|l| (l, "rtmps", rtmps_config.clone()));
        for (listen, purpose, tls) in plain.chain(tls) {
            let listener = bind(listen.socket_addr(), purpose).await?;
            rtmp.push((listener, tls));
        }
        let core = NodeCore::start(loaded, identity, runtime, NodeEnv::system()).await?;
        let NodeCore {
            state,
            rtmp: rtmp_context,
            root,
            root_task,
            teardown,
        } = core;
        let context = state.node.clone();
        let rtmp = rtmp
            .into_iter()
            .map(|(listener, tls)| {
                let transport = RtmpTransport {
                    tls,
                    proxies: proxies.clone(),
                    open: state.stats.connections().clone(),
                };
                (listener, transport)
            })
            .collect();
        let rules = srt_publish_rules(config);
        let mut srt = Vec::new();
        for listen in &config.srt {
            let address = listen.socket_addr();
            let listener =
                crate::srt::listener::SrtListener::bind(address, &rtmp_context, rules.clone())
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
        let fast_path = crate::http::fast_path::FastPath::new(
            state.balancers.clone(),
            config.trusted_proxies.clone(),
            crate::http::cors::Cors::from_config(&config.cors_allow_origin),
        );
        let listeners = bound
            .into_iter()
            .map(|(listener, with_api, transport)| {
                let listening = Listening {
                    router: router(state.clone(), with_api),
                    fast: fast_path.clone(),
                    transport,
                    limits: HttpLimits::default(),
                    open: state.stats.connections().clone(),
                };
                (listener, listening)
            })
            .collect();
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
            listeners,
            rtmp,
            certificates,
            rtmp_context,
            srt,
            root,
            root_task,
            _teardown: teardown,
        })
    }

    /// The addresses actually bound (ports resolved), in config order.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(listener, _)| listener.local_addr().ok())
            .collect()
    }

    /// The TLS identity of the https and rtmps listeners, if the node has any: SIGHUP
    /// reloads it.
    pub fn certificates(&self) -> Option<Arc<CertificateStore>> {
        self.certificates.clone()
    }

    /// The node's running streams (the benchmarks watch one from inside).
    pub fn directory(&self) -> &crate::media::directory::Directory {
        &self.rtmp_context.directory
    }

    /// The node's context (registry, runtime).
    pub fn context(&self) -> &NodeContext {
        &self.context
    }

    /// Serves until `shutdown` turns true (or the tree gives up), then stops everything.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
        let runtime = self.context.runtime.clone();
        tracing::info!(hostname = %self.context.name, listeners = ?self.local_addrs(), actors = self.context.registry.len(), "node started");
        let (stop_http, http_stopped) = watch::channel(false);
        // One connection worker per core (see flotilla_otp::core_workers).
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let connections =
            std::sync::Arc::new(runtime.core_workers("http", cores).map_err(|source| {
                NodeError::Local {
                    context: "cannot start the http connection workers".into(),
                    source,
                }
            })?);
        let mut http_tasks = Vec::new();
        for (listener, listening) in self.listeners {
            let task = serve(
                runtime.clone(),
                connections.clone(),
                listener,
                listening,
                http_stopped.clone(),
            );
            http_tasks.push(runtime.spawn("http-listener", task));
        }
        if let Some(store) = self.certificates {
            runtime.spawn("tls-certificate-watch", store.watch(http_stopped.clone()));
        }
        for (listener, transport) in self.rtmp {
            let task = crate::rtmp::server::serve(
                self.rtmp_context.clone(),
                listener,
                transport,
                http_stopped.clone(),
            );
            http_tasks.push(runtime.spawn("rtmp-listener", task));
        }
        for listener in self.srt {
            let task = listener.serve(self.rtmp_context.clone(), http_stopped.clone());
            http_tasks.push(runtime.spawn("srt-listener", task));
        }
        let mut root_task = self.root_task;
        let tree_failed = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => false,
            _ = &mut root_task => true,
        };
        let _ = stop_http.send(true);
        for task in http_tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "an http listener task failed");
            }
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

/// Which streams and templates ask their SRT publishers for a passphrase.
fn srt_publish_rules(config: &crate::config::model::Config) -> crate::srt::listener::PublishRules {
    let secret = |options: &crate::config::model::StreamOptions| {
        options.srt_passphrase.as_ref().map(|s| s.0.clone())
    };
    crate::srt::listener::PublishRules {
        streams: config
            .streams
            .iter()
            .filter_map(|stream| Some((stream.name.clone(), secret(&stream.options)?)))
            .collect(),
        templates: config
            .templates
            .iter()
            .filter_map(|t| Some((t.prefixes.clone(), secret(&t.options)?)))
            .flat_map(|(prefixes, secret)| prefixes.into_iter().map(move |p| (p, secret.clone())))
            .collect(),
    }
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
    /// stops the node: it reloads the TLS certificate (`certificates`), and says that the
    /// config itself is read at start only.
    pub async fn termination(
        &mut self,
        certificates: Option<Arc<CertificateStore>>,
    ) -> &'static str {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return "SIGTERM",
                _ = self.interrupt.recv() => return "SIGINT",
                _ = self.hangup.recv() => {
                    if let Some(store) = &certificates {
                        store.reload_logged(true);
                    }
                    tracing::warn!(
                        "SIGHUP ignored for the config: reload is not supported yet; restart the node to apply a new config (the TLS certificate, if any, was re-read)"
                    );
                }
            }
        }
    }
}
