//! The composition root: from a loaded config to a running node, and back down.
//!
//! Start-up order: resolve identity → bind every listener (so a taken port fails before
//! anything runs) → serve → on SIGINT/SIGTERM stop accepting, drain, exit 0.

use std::sync::Arc;

use flotilla_actors::rt::Runtime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::LoadedConfig;
use crate::config::identity::NodeIdentity;
use crate::error::NodeError;
use crate::http::access::AccessPolicy;
use crate::http::api::{ApiState, router};
use crate::http::{HttpLimits, serve};

/// A node whose listeners are bound and which is ready to serve.
pub struct Node {
    runtime: Runtime,
    identity: Arc<NodeIdentity>,
    listeners: Vec<(TcpListener, axum::Router)>,
}

impl Node {
    /// Binds every listener of `loaded`. Fails with [`NodeError::Bind`] when a port is taken.
    pub async fn bind(
        loaded: &LoadedConfig,
        identity: NodeIdentity,
        runtime: Runtime,
    ) -> Result<Node, NodeError> {
        let config = Arc::new(loaded.config.clone());
        let identity = Arc::new(identity);
        let access = Arc::new(AccessPolicy::from_config(&config));
        let state = ApiState {
            config: config.clone(),
            identity: identity.clone(),
            access: access.clone(),
            runtime: runtime.clone(),
        };
        let mut listeners = Vec::new();
        for http in &config.http {
            let address = http.listen.socket_addr();
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| NodeError::Bind {
                    address,
                    purpose: "http",
                    source,
                })?;
            listeners.push((listener, router(state.clone(), http.serves_api())));
        }
        if !config.https.is_empty() {
            tracing::warn!("https listeners are parsed but not served yet");
        }
        if access.is_open() && config.http.iter().any(|l| l.serves_api()) {
            tracing::warn!(
                "the HTTP API has no edit_auth/view_auth: anyone who reaches the port can read it"
            );
        }
        Ok(Node {
            runtime,
            identity,
            listeners,
        })
    }

    /// The addresses actually bound (ports resolved), in config order.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(listener, _)| listener.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` turns true, then drains and returns.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let addrs = self.local_addrs();
        tracing::info!(hostname = %self.identity.hostname, listeners = ?addrs, "node started");
        let mut tasks = Vec::new();
        for (listener, router) in self.listeners {
            let task = serve(
                self.runtime.clone(),
                listener,
                router,
                HttpLimits::default(),
                shutdown.clone(),
            );
            tasks.push(self.runtime.spawn("http-listener", task));
        }
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "an http listener task failed");
            }
        }
        tracing::info!("node stopped");
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn termination_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
