//! The `flotilla` command: run a node, check a config, make a cluster key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flotilla::config::identity::{HOSTNAME_ENV, NodeIdentity};
use flotilla::config::{self, LoadOptions, LoadedConfig, print};
use flotilla::defaults::{DEFAULT_CONFIG, DEFAULT_CONFIG_NAME};
use flotilla::error::{Classified, NodeError};
use flotilla::node::{Node, Signals};
use flotilla::reload::ConfigOrigin;
use flotilla_otp::rt::Runtime;

#[derive(Parser)]
#[command(
    name = "flotilla",
    version = flotilla::build_info::VERSION,
    about = "A clustered live-media server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Run {
        /// Config file (fragments in FILE.d/*.conf are merged). Without it, the embedded
        /// default config is used.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// This node's name (overrides FLOTILLA_HOSTNAME and the `hostname` directive).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Check a config file: print it in canonical form, or its errors (exit code 1).
    CheckConfig {
        file: PathBuf,
        /// The node name to check `capture_at` references against.
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Print a new random cluster key (32 random bytes, hex).
    Keygen,
    /// Write a self-signed development certificate for the https and rtmps listeners
    /// (flotilla.crt and flotilla.key, valid for localhost, 127.0.0.1, ::1 and NAMEs).
    DevCert {
        /// Directory to write into (the config's directory is where a node looks).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// More host names or addresses the certificate is valid for.
        names: Vec<String>,
    },
    /// Inspect a running node (and, with @NODE, its peers): actors, streams, peers,
    /// ingest, balancers; kill an actor to see its supervisor restart it.
    Shell {
        /// The node's mesh address, HOST:PORT (its first http port unless cluster_port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        node: String,
        /// Run one command and exit (status 1 if it failed).
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Print replies as JSON lines.
        #[arg(long)]
        json: bool,
        /// The cluster key (else FLOTILLA_CLUSTER_KEY, else --config's cluster_key).
        #[arg(long)]
        key: Option<String>,
        /// A config file to take the cluster key from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log in with edit_auth/view_auth credentials instead of the cluster key (the
        /// password from FLOTILLA_SHELL_PASSWORD or --password-file).
        #[arg(long, conflicts_with_all = ["key", "config"])]
        user: Option<String>,
        /// A file holding the login password (first line).
        #[arg(long, requires = "user")]
        password_file: Option<PathBuf>,
    },
    /// Benchmark: SRT ingest latency beyond the configured SRT latency (a node and an
    /// encoder in one process, on loopback; needs libsrt).
    BenchSrt {
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// The SRT latency the encoder asks for, ms.
        #[arg(long, default_value_t = 120)]
        latency: u32,
    },
    /// Benchmark: a node and N simulated viewers in one process, on loopback.
    Bench {
        /// Which protocol the viewers use.
        #[arg(long, value_enum, default_value = "hls")]
        protocol: flotilla::bench::Protocol,
        /// How many viewers.
        #[arg(long, default_value_t = 1000)]
        viewers: usize,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Viewers join evenly over this many seconds.
        #[arg(long, default_value_t = 10)]
        ramp: u64,
        /// Load a running node instead of one in this process: its HTTP address.
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// With --http: the node's RTMP port.
        #[arg(long, default_value_t = 1935)]
        rtmp_port: u16,
        /// With --http: the node's pid, to report its CPU and memory.
        #[arg(long)]
        pid: Option<u32>,
        /// RTMP players that start playing before the viewers and never read.
        #[arg(long, default_value_t = 0)]
        stalled: usize,
    },
}

fn main() -> ExitCode {
    // ring is the single rustls provider of the build; install it before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, hostname } => run(config, hostname),
        Command::CheckConfig { file, hostname } => check_config(&file, hostname.as_deref()),
        Command::BenchSrt { duration, latency } => {
            match flotilla::srt::bench::run(duration, latency) {
                Ok(report) => {
                    println!(
                        "srt ingest: latency {} ms, {} frames, added beyond it p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                        report.latency_ms,
                        report.frames,
                        report.added_p50_ms,
                        report.added_p99_ms,
                        report.added_max_ms
                    );
                    Ok(())
                }
                Err(reason) => Err(NodeError::Local {
                    context: "benchmark".into(),
                    source: std::io::Error::other(reason),
                }),
            }
        }
        Command::Bench {
            protocol,
            viewers,
            duration,
            ramp,
            http,
            rtmp_port,
            pid,
            stalled,
        } => flotilla::bench::run(
            protocol,
            viewers,
            duration,
            ramp,
            flotilla::bench::Target {
                external: http.map(|http| (http, rtmp_port, pid.unwrap_or(0))),
                stalled,
            },
        )
        .map_err(|reason| NodeError::Local {
            context: "benchmark".into(),
            source: std::io::Error::other(reason),
        }),
        Command::Shell {
            node,
            command,
            json,
            key,
            config,
            user,
            password_file,
        } => {
            let options = flotilla::shell::client::ShellOptions {
                node,
                command,
                json,
                key,
                config,
                user,
                password_file,
            };
            return match flotilla::shell::client::main(options) {
                Ok(code) => ExitCode::from(code),
                Err(error) => {
                    eprintln!("flotilla shell: {error}");
                    ExitCode::from(error.exit_code())
                }
            };
        }
        Command::DevCert { dir, names } => {
            let written = flotilla::tls::dev_cert::DevCertificate::generate(&names)
                .map_err(std::io::Error::other)
                .and_then(|pair| pair.write(&dir));
            match written {
                Ok((certificate, key)) => {
                    println!("{}\n{}", certificate.display(), key.display());
                    Ok(())
                }
                Err(source) => Err(NodeError::Local {
                    context: format!("cannot write a certificate into {}", dir.display()),
                    source,
                }),
            }
        }
        Command::Keygen => {
            let key = Runtime::production().random_bytes(32);
            println!(
                "{}",
                key.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match &error {
                // Config errors are already multi-line reports with their own headers.
                NodeError::Config(errors) => eprintln!("{errors}"),
                other => eprintln!("flotilla: {} error: {other}", other.fault()),
            }
            ExitCode::from(error.exit_code())
        }
    }
}

fn env_hostname() -> Option<String> {
    std::env::var(HOSTNAME_ENV)
        .ok()
        .filter(|name| !name.trim().is_empty())
}

fn load(path: Option<&std::path::Path>, hostname: Option<&str>) -> Result<LoadedConfig, NodeError> {
    let options = LoadOptions {
        runtime_hostname: hostname,
    };
    Ok(match path {
        Some(path) => config::load_file(path, &options)?,
        None => config::load_str(DEFAULT_CONFIG_NAME, DEFAULT_CONFIG)?,
    })
}

fn check_config(file: &std::path::Path, hostname: Option<&str>) -> Result<(), NodeError> {
    let loaded = load(Some(file), hostname)?;
    let (warnings, omitted) = config::diagnostic::shown(&loaded.warnings);
    for warning in warnings {
        eprintln!("{}\n", warning.render(&loaded.sources));
    }
    if let Some(omitted) = omitted {
        eprintln!("{omitted}\n");
    }
    print!("{}", print::print(&loaded.config));
    Ok(())
}

fn run(path: Option<PathBuf>, cli_hostname: Option<String>) -> Result<(), NodeError> {
    let env_hostname = env_hostname();
    let runtime_hostname = cli_hostname.as_deref().or(env_hostname.as_deref());
    let loaded = load(path.as_deref(), runtime_hostname)?;
    flotilla::logging::init(loaded.config.loglevel);
    for line in loaded.warning_lines() {
        tracing::warn!("{line}");
    }
    let identity = NodeIdentity::resolve(
        &loaded.config,
        cli_hostname.as_deref(),
        env_hostname.as_deref(),
    );
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| NodeError::Local {
            context: "cannot start the async runtime".into(),
            source,
        })?;
    tokio.block_on(async move {
        let runtime = Runtime::production();
        let signals = Signals::install().map_err(|source| NodeError::Local {
            context: "cannot listen for signals".into(),
            source,
        })?;
        let mut node = Node::start(&loaded, identity, runtime.clone()).await?;
        if let Some(path) = path {
            node.set_config_origin(ConfigOrigin::File {
                path,
                runtime_hostname: runtime_hostname.map(str::to_string),
            });
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let certificates = node.certificates();
        let reloads = node.reload_handle();
        runtime.spawn("signals", async move {
            let mut signals = signals;
            let name = signals.termination(certificates, reloads).await;
            tracing::info!(signal = name, "shutting down");
            let _ = stop.send(true);
        });
        node.run(stopped).await
    })
}
