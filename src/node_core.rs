//! The node without its listeners: configuration in, running actor tree, mesh, media
//! plane and the state every edge serves from out.
//!
//! [`crate::node::Node`] adds the HTTP and RTMP listeners of the config to this; the
//! deterministic simulator (crate `flotilla-sim`) runs many of these in one process with
//! its own [`NodeEnv`]: a simulated network under the mesh, fake media sources, no host
//! sampling. Keeping one composition for both is what makes the simulation test the code
//! that ships.

use std::sync::{Arc, RwLock};

use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_cluster::stream::StreamMedia;
use flotilla_cluster::tree::{NodeIo, node_spec};
use flotilla_otp::node::{NodeContext, NodeTeardown};
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::{SupervisorMsg, start_root};
use ractor::ActorRef;
use tokio::task::JoinHandle;

use crate::config::LoadedConfig;
use crate::config::identity::NodeIdentity;
use crate::error::NodeError;
use crate::http::access::AccessPolicy;
use crate::http::api::ApiState;
use crate::ingest::NodeIngestIo;
use crate::live::Live;
use crate::media::directory::Directory;
use crate::media::service::{MediaService, as_stream_media};
use crate::mesh::net::{MeshNet, SystemNet};
use crate::plan::node_plan;
use crate::reload::{ConfigOrigin, Reloader};
use crate::rtmp::server::RtmpContext;
use crate::sessions::SessionTable;
use crate::srt::listener::PublishRules;

/// Builds the media a node's streams run: given the node's directory and runtime.
pub type MediaFactory = Arc<dyn Fn(Directory, Runtime) -> Arc<dyn StreamMedia> + Send + Sync>;

/// What a node takes from its environment.
#[derive(Clone)]
pub struct NodeEnv {
    /// The mesh's sockets and resolver.
    pub mesh_net: Arc<dyn MeshNet>,
    /// The media of streams; `None` runs the real inputs and packaging.
    pub media: Option<MediaFactory>,
    /// Read the host's CPU and memory for the stats and the mesh's load figures.
    pub sample_host: bool,
    /// A cluster_ingest rule broken on purpose (the simulator's `--sabotage`; the
    /// feature is off in the node's release binary).
    #[cfg(feature = "sabotage")]
    pub sabotage: Option<flotilla_cluster::ingest::sabotage::Sabotage>,
}

impl NodeEnv {
    /// A real node's environment: the OS network, real media, host sampling.
    pub fn system() -> NodeEnv {
        NodeEnv {
            mesh_net: Arc::new(SystemNet),
            media: None,
            sample_host: true,
            #[cfg(feature = "sabotage")]
            sabotage: None,
        }
    }
}

/// A running node core.
pub struct NodeCore {
    /// What HTTP handlers, the shell and the simulator read.
    pub state: ApiState,
    /// What RTMP connections use.
    pub rtmp: RtmpContext,
    /// The root supervisor.
    pub root: ActorRef<SupervisorMsg>,
    /// Ends when the root supervisor stops (given up, or stopped).
    pub root_task: JoinHandle<()>,
    /// Ends the node's registry when the node is dropped.
    pub teardown: NodeTeardown,
    /// What a config reload changes (with the listeners the node adds).
    pub reloader: Reloader,
    /// Reloads asked for through [`ApiState::reload`], for whoever applies them (the
    /// node's run loop; a core without one answers that the node is stopping).
    pub reload_queue: tokio::sync::mpsc::Receiver<crate::reload::ReloadRequest>,
}

impl NodeCore {
    /// Starts the actor tree, the mesh and the media plane of `loaded` for `identity`.
    pub async fn start(
        loaded: &LoadedConfig,
        identity: NodeIdentity,
        runtime: Runtime,
        env: NodeEnv,
    ) -> Result<NodeCore, NodeError> {
        let config = &loaded.config;
        let live_config = Live::new(config.clone());
        let context = NodeContext::new(identity.id.clone(), runtime);
        let access = Live::new(AccessPolicy::from_config(config));
        let plan = node_plan(config, &identity);
        #[cfg(feature = "sabotage")]
        let plan = {
            let mut plan = plan;
            plan.ingest.sabotage = env.sabotage;
            plan
        };
        let plan = Arc::new(RwLock::new(plan));
        let service = MediaService::new(context.runtime.clone());
        let media = match &env.media {
            Some(factory) => factory(service.directory.clone(), context.runtime.clone()),
            None => as_stream_media(&service),
        };
        let geoip = open_geoip(config)?;
        let gate = crate::auth::Gate::from_config(config, context.runtime.clone(), geoip.clone())?;
        let logs = NodeLogs::open(loaded)?;
        let events = crate::events::EventBus::start(
            &identity.id,
            context.runtime.clone(),
            &config.event_sinks,
            |path| loaded.resolve_path(path),
        )?;
        let sessions = SessionTable::new(config, context.clone(), service.directory.clone(), gate)
            .with_log(logs.sessions)
            .with_events(events.clone());
        let stats = crate::stats::start_with(
            &context.runtime,
            service.directory.clone(),
            context.name.to_string(),
            config.total_bandwidth.map_or(0, |b| b.bits_per_second),
            env.sample_host,
        );
        let board = IngestBoard::default();
        let mesh = crate::mesh::node::start(
            config,
            &identity,
            &context,
            env.mesh_net.clone(),
            stats.clone(),
            service.directory.clone(),
            board.clone(),
        )
        .map_err(NodeError::Mesh)?;
        let sources = match &mesh {
            Some(mesh) => crate::source::NodeSources::new(
                config,
                mesh.service.clone(),
                &mesh.identity,
                context.runtime.clone(),
            )
            .map_err(|e| NodeError::Mesh(e.into()))?,
            None => None,
        };
        let relays = mesh.as_ref().map(|mesh| {
            let upstream: Arc<dyn crate::relay::Upstream> =
                Arc::new(crate::relay::upstream::MeshUpstream {
                    mesh: mesh.service.clone(),
                    links: mesh.links.clone(),
                    sources: sources.clone(),
                });
            let _ = service.upstream.set(upstream.clone());
            mesh.service
                .set_relay(Arc::new(crate::relay::server::OriginServer {
                    directory: service.directory.clone(),
                    board: board.clone(),
                    view: Some(mesh.service.view().clone()),
                    identity: identity.id.clone(),
                    runtime: context.runtime.clone(),
                }));
            crate::relay::start::RelayStarter {
                node: context.clone(),
                media: media.clone(),
                directory: service.directory.clone(),
                upstream,
                config: live_config.clone(),
            }
        });
        let rtmp = RtmpContext {
            node: context.clone(),
            directory: service.directory.clone(),
            sessions: sessions.clone(),
            media: media.clone(),
            templates: Live::new(config.templates.clone()),
            mesh: mesh.as_ref().map(|mesh| mesh.service.clone()),
            redirect_players: config.rtmp_redirect == Some(true),
            ingest: board.clone(),
            relays: relays.clone(),
        };
        let peers: Arc<dyn flotilla_cluster::mesh::PeerIo> = match &mesh {
            Some(mesh) => Arc::new(mesh.links.clone()),
            None => Arc::new(flotilla_cluster::mesh::NoMesh),
        };
        let ingest = NodeIngestIo {
            view: mesh.as_ref().map(|mesh| mesh.service.view().clone()),
            stats: stats.clone(),
            directory: service.directory.clone(),
        };
        let balancer_io = Arc::new(crate::balancer::NodeBalancerIo::new(
            config,
            &identity,
            mesh.as_ref().map(|mesh| mesh.service.view().clone()),
            stats.clone(),
            service.directory.clone(),
        ));
        let balancer_board = flotilla_cluster::balancer::BalancerBoard::default();
        let source_io: Arc<dyn flotilla_cluster::source::SourceIo> = match &sources {
            Some(sources) => Arc::new(sources.clone()),
            None => Arc::new(flotilla_cluster::source::NoSources),
        };
        let io = NodeIo {
            media,
            peers,
            sources: source_io,
            ingest: Arc::new(ingest),
            board: board.clone(),
            balancer: balancer_io.clone(),
            balancer_board: balancer_board.clone(),
        };
        let (root, root_task) = start_root(&context, node_spec(plan.clone(), io))
            .await
            .map_err(NodeError::TreeStart)?;
        let balancers = crate::balancer::Balancers::new(
            config,
            balancer_io,
            balancer_board,
            geoip,
            context.runtime.clone(),
        );
        let reload_mesh = mesh.clone();
        let (reload, reload_queue) = crate::reload::ReloadHandle::channel();
        let webrtc = crate::webrtc::WebRtc::new(
            crate::webrtc::Settings {
                ports: config
                    .webrtc_ports
                    .unwrap_or(crate::webrtc::ports::DEFAULT_PORTS),
                address: config.webrtc_address,
            },
            context.runtime.clone(),
        )
        .map(|engine| crate::http::webrtc::WebRtcSide {
            engine,
            publishing: rtmp.clone(),
        })
        .inspect_err(|error| tracing::error!(%error, "WebRTC (WHIP/WHEP) is off"))
        .ok();
        let state = ApiState::new(crate::http::api::ApiShared {
            webrtc,
            reload,
            access_log: logs.access,
            events: events.clone(),
            held: Default::default(),
            config: live_config,
            identity: Arc::new(identity),
            access,
            node: context,
            directory: service.directory.clone(),
            sessions,
            stats,
            mesh: mesh.map(|mesh| mesh.service),
            ingest: board,
            balancers,
            relays,
            sources,
        });
        if events.is_active() {
            let watcher = crate::events::watch::Watcher {
                bus: events.clone(),
                directory: state.directory.clone(),
                view: state.mesh.as_ref().map(|mesh| mesh.view().clone()),
                board: state.ingest.clone(),
                me: state.identity.id.clone(),
                runtime: state.node.runtime.clone(),
            };
            state.node.runtime.spawn("event-watch", watcher.run());
        }
        let reloader = Reloader {
            origin: ConfigOrigin::Text,
            state: state.clone(),
            rtmp: rtmp.clone(),
            plan,
            mesh: reload_mesh,
            srt_rules: Live::new(PublishRules::of(config)),
        };
        Ok(NodeCore {
            teardown: state.node.teardown(),
            state,
            rtmp,
            root,
            root_task,
            reloader,
            reload_queue,
        })
    }
}

/// The node's line logs (`logrequests`, `session_log`), opened at start.
struct NodeLogs {
    access: Option<crate::logfile::LineLog>,
    sessions: Option<crate::logfile::LineLog>,
}

impl NodeLogs {
    fn open(loaded: &LoadedConfig) -> Result<NodeLogs, NodeError> {
        let open = |path: std::path::PathBuf, what: &str| {
            crate::logfile::LineLog::open(&path).map_err(|source| NodeError::Local {
                context: format!("cannot open the {what} {}", path.display()),
                source,
            })
        };
        let config = &loaded.config;
        let access = match config.logrequests.as_ref().and_then(|log| log.path()) {
            Some(path) => Some(open(loaded.resolve_path(path), "access log")?),
            None => None,
        };
        let sessions = match &config.session_log {
            Some(dir) => Some(open(
                loaded.resolve_path(dir).join("sessions.log"),
                "session log",
            )?),
            None => None,
        };
        Ok(NodeLogs { access, sessions })
    }
}

/// The GeoIP database of `geoip PATH;`, read once. Without one, balancer country lists
/// are ignored, and the operator is told so.
fn open_geoip(
    config: &crate::config::Config,
) -> Result<Option<Arc<crate::geoip::GeoIp>>, NodeError> {
    let lists_countries = config.balancers.iter().any(|b| b.routes_by_country());
    let Some(path) = &config.geoip else {
        if lists_countries {
            tracing::warn!(
                "balancer country lists are ignored: no `geoip PATH;` database is configured (every listed server is a candidate for every viewer)"
            );
        }
        return Ok(None);
    };
    let geoip = crate::geoip::GeoIp::open(std::path::Path::new(path))?;
    tracing::info!(path = %path, database = %geoip.database_type, "geoip database loaded");
    Ok(Some(Arc::new(geoip)))
}
