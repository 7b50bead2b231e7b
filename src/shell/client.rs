//! The operator's side of `flotilla shell`: dial a node with the cluster key's identity
//! (or log in with `--user` and the password from FLOTILLA_SHELL_PASSWORD or
//! `--password-file`, see `login`), run one command (`-c`) or an interactive session (history, completion), print tables
//! or `--json`.
//!
//! Exit status: 0 every command succeeded; 1 a command failed (bad command, no such
//! actor, refused); 3 the node could not be reached or refused the connection (wrong
//! key, not allowed from this address).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::commands::{self, COMMANDS};
use super::render::{Style, render};
use super::server::ask;
use super::wire::Reply;
use crate::error::{Classified, Fault};
use crate::mesh::auth::{self, ClusterIdentity, SHELL_ALPN};
use crate::mesh::connect::ConnectError;

/// Where the key comes from when `--key` is absent.
pub const KEY_ENV: &str = "FLOTILLA_CLUSTER_KEY";
/// Where the login password comes from when `--password-file` is absent.
pub const PASSWORD_ENV: &str = "FLOTILLA_SHELL_PASSWORD";
/// Longest password file read.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;
/// Server name a login client asks for (the node answers with its main certificate).
const LOGIN_SERVER_NAME: &str = "flotilla-shell";

/// Lines of interactive history kept.
pub const HISTORY_LINES: usize = 1_000;

/// What `flotilla shell` was asked.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// `HOST:PORT` of the node (its mesh port: the first `http` port unless
    /// `cluster_port`).
    pub node: String,
    /// `-c`: one command, then exit.
    pub command: Option<String>,
    /// Machine-readable output.
    pub json: bool,
    /// `--key`.
    pub key: Option<String>,
    /// `--config`: take the key from this config file.
    pub config: Option<PathBuf>,
    /// `--user`: log in with edit_auth/view_auth credentials instead of the key.
    pub user: Option<String>,
    /// `--password-file`: the login password (else FLOTILLA_SHELL_PASSWORD).
    pub password_file: Option<PathBuf>,
}

/// How the shell proves who it is.
pub enum ShellAuth {
    /// The cluster key's certificate: edit rights.
    Key(ClusterIdentity),
    /// edit_auth or view_auth credentials: their rights.
    Login { user: String, password: String },
}

fn password(options: &ShellOptions) -> Result<String, ShellError> {
    if let Some(path) = &options.password_file {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_PASSWORD_FILE_BYTES).read_to_string(&mut text))
            .map_err(|e| ShellError::Config(format!("{}: {e}", path.display())))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    match std::env::var(PASSWORD_ENV) {
        Ok(password) if !password.is_empty() => Ok(password),
        _ => Err(ShellError::Config(format!(
            "--user needs a password: set {PASSWORD_ENV} or give --password-file FILE"
        ))),
    }
}

fn shell_auth(options: &ShellOptions) -> Result<ShellAuth, ShellError> {
    if let Some(user) = &options.user {
        return Ok(ShellAuth::Login {
            user: user.clone(),
            password: password(options)?,
        });
    }
    let key = cluster_key(options)?;
    ClusterIdentity::derive(&key)
        .map(ShellAuth::Key)
        .map_err(|e| ShellError::Config(e.to_string()))
}

/// Why the shell could not run, as the operator reads it: the variant is who is at
/// fault (the typed causes are classified where they arise), the text says what
/// happened and to which node.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The shell's own options or config: no key, no password, an unreadable file.
    #[error("config: {0}")]
    Config(String),
    /// The node could not be reached or the connection failed (retry).
    #[error("transport: {0}")]
    Transport(String),
    /// The node refused: another key, a wrong password, a closed connection.
    #[error("refused: {0}")]
    Refused(String),
}

impl Classified for ShellError {
    fn fault(&self) -> Fault {
        match self {
            ShellError::Config(_) => Fault::Config,
            ShellError::Transport(_) => Fault::Transport,
            ShellError::Refused(_) => Fault::Peer,
        }
    }
}

impl ShellError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self.fault() {
            Fault::Config => 1,
            Fault::Local | Fault::Peer | Fault::Transport => 3,
        }
    }
}

fn cluster_key(options: &ShellOptions) -> Result<String, ShellError> {
    if let Some(key) = &options.key {
        return Ok(key.clone());
    }
    if let Ok(key) = std::env::var(KEY_ENV)
        && !key.trim().is_empty()
    {
        return Ok(key);
    }
    if let Some(path) = &options.config {
        let loaded = crate::config::load_file(path, &crate::config::LoadOptions::default())
            .map_err(|errors| ShellError::Config(errors.to_string()))?;
        return loaded
            .config
            .cluster_key
            .map(|secret| secret.0)
            .ok_or_else(|| ShellError::Config(format!("{} has no cluster_key", path.display())));
    }
    Err(ShellError::Config(format!(
        "no cluster key: give --key KEY, {KEY_ENV}, or -c FILE with a cluster_key"
    )))
}

/// A connection to one node's shell.
pub struct Session {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
}

impl Session {
    /// Dials `node` and proves who this is with `credential`.
    pub async fn connect(node: &str, credential: &ShellAuth) -> Result<Session, ShellError> {
        let address: SocketAddr = tokio::net::lookup_host(node)
            .await
            .map_err(|e| ShellError::Transport(format!("cannot resolve {node}: {e}")))?
            .next()
            .ok_or_else(|| ShellError::Transport(format!("{node} resolves to nothing")))?;
        let bind: SocketAddr = if address.is_ipv6() {
            "[::]:0".parse().expect("valid")
        } else {
            "0.0.0.0:0".parse().expect("valid")
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| ShellError::Transport(format!("cannot open a UDP socket: {e}")))?;
        let (config, server_name) = match credential {
            ShellAuth::Key(identity) => (
                auth::client_config(identity, SHELL_ALPN, &auth::MeshCrypto::system()),
                identity.server_name.as_str(),
            ),
            ShellAuth::Login { .. } => (
                auth::login_client_config(SHELL_ALPN, &auth::MeshCrypto::system()),
                LOGIN_SERVER_NAME,
            ),
        };
        let config = config.map_err(|e| ShellError::Config(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let connecting = endpoint
            .connect(address, server_name)
            .map_err(|e| ShellError::Transport(e.to_string()))?;
        let connection = tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                ShellError::Transport(format!(
                    "{node} did not answer within {:?} (is it running, is this its http/cluster_port?)",
                    auth::HANDSHAKE_TIMEOUT
                ))
            })?
            .map_err(|e| match ConnectError::from(e) {
                error if error.is_unauthorized() => {
                    ShellError::Refused(format!("{node} holds another cluster key ({error})"))
                }
                error => ShellError::Transport(format!("{node}: {error}")),
            })?;
        if let ShellAuth::Login { user, password } = credential {
            log_in(&connection, node, user, password).await?;
        }
        Ok(Session {
            endpoint,
            connection,
        })
    }

    /// Runs one command line.
    pub async fn run(&self, line: &str) -> Result<Reply, ShellError> {
        ask(&self.connection, line)
            .await
            .map_err(|error| match self.connection.close_reason() {
                Some(quinn::ConnectionError::ApplicationClosed(close)) => {
                    ShellError::Refused(String::from_utf8_lossy(&close.reason).to_string())
                }
                _ => ShellError::Transport(error.to_string()),
            })
    }

    /// Runs a `trace` line: prints each event as it arrives until the trace ends or the
    /// operator presses Ctrl-C. Returns whether it ran (not refused).
    pub async fn trace(&self, line: &str, json: bool, style: Style) -> Result<bool, ShellError> {
        let mut receive = super::server::send_command(&self.connection, line)
            .await
            .map_err(|error| ShellError::Transport(error.to_string()))?;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            let frame = tokio::select! {
                frame = super::wire::read::<Reply>(&mut receive, super::wire::MAX_REPLY_BYTES) => frame,
                _ = &mut interrupted => {
                    let _ = receive.stop(0u32.into());
                    println!("trace stopped");
                    return Ok(true);
                }
            };
            let Ok(reply) = frame else {
                // The node finished the stream.
                return Ok(true);
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "status": reply.status, "body": reply.body })
                );
            } else if let Some(error) = reply.error_message() {
                println!("error ({}): {error}", reply.status);
            } else {
                print!("{}", super::render::trace_line(&reply.body, style));
            }
            if reply.status >= 400 {
                return Ok(false);
            }
            if reply.body["event"] == "end" {
                return Ok(true);
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.connection.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}

/// Prints one reply; returns whether the command succeeded.
/// Proves the password on the connection's first stream and checks the node's proof;
/// nothing else is sent before the node has proven it knows the password too.
async fn log_in(
    connection: &quinn::Connection,
    node: &str,
    user: &str,
    password: &str,
) -> Result<(), ShellError> {
    use super::login::{LoginRequest, Side, binding, proof, verify};
    use super::wire::{self, MAX_REPLY_BYTES, MAX_REQUEST_BYTES};
    let transport =
        |e: &dyn std::fmt::Display| ShellError::Transport(format!("{node}: login: {e}"));
    let binding = binding(connection).map_err(|e| transport(&e))?;
    let exchange = async {
        let (mut send, mut receive) = connection
            .open_bi()
            .await
            .map_err(super::server::AskError::Open)?;
        let request = LoginRequest {
            user: user.to_string(),
            proof: proof(password, Side::Client, &binding),
        };
        wire::write(&mut send, &request, MAX_REQUEST_BYTES).await?;
        let _ = send.finish();
        Ok::<_, super::server::AskError>(wire::read::<Reply>(&mut receive, MAX_REPLY_BYTES).await?)
    };
    let reply = tokio::time::timeout(super::server::LOGIN_TIMEOUT, exchange)
        .await
        .map_err(|_| transport(&"no answer in time"))?
        .map_err(|e| transport(&e))?;
    if let Some(error) = reply.error_message() {
        return Err(ShellError::Refused(format!(
            "{node} refused the login: {error}"
        )));
    }
    let proven = reply.body["proof"]
        .as_str()
        .is_some_and(|theirs| verify(password, Side::Server, &binding, theirs));
    if !proven {
        connection.close(3u32.into(), b"node not proven");
        return Err(ShellError::Refused(format!(
            "{node} accepted the login but did not prove it knows the password: \
             it is not the node you meant, or something sits in between"
        )));
    }
    Ok(())
}

fn print(line: &str, reply: &Reply, json: bool, style: Style) -> bool {
    if json {
        println!(
            "{}",
            serde_json::json!({ "status": reply.status, "body": reply.body })
        );
    } else {
        // The node parsed the same line, so this parse succeeds when the reply is data.
        match commands::parse(line) {
            Ok(command) => print!("{}", render(&command, reply, style)),
            Err(_) => println!(
                "error ({}): {}",
                reply.status,
                reply.error_message().unwrap_or_default()
            ),
        }
    }
    reply.status < 400
}

/// Runs one line and prints its outcome; returns whether it succeeded.
async fn run_line(
    session: &Session,
    line: &str,
    json: bool,
    style: Style,
) -> Result<bool, ShellError> {
    if let Ok(commands::Command::Trace { .. }) = commands::parse(line) {
        return session.trace(line, json, style).await;
    }
    let reply = session.run(line).await?;
    Ok(print(line, &reply, json, style))
}

/// Completes command words.
struct Completion;

impl rustyline::completion::Completer for Completion {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        if before.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let words = COMMANDS
            .iter()
            .filter_map(|(usage, _)| usage.split_whitespace().next())
            .filter(|word| word.starts_with(before) && !word.starts_with('@'))
            .map(str::to_string)
            .collect();
        Ok((0, words))
    }
}
impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".flotilla_shell_history"))
}

/// Runs `flotilla shell`; returns the exit status.
pub fn main(options: ShellOptions) -> Result<u8, ShellError> {
    let credential = shell_auth(&options)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ShellError::Transport(format!("cannot start the async runtime: {e}")))?;
    let session = tokio.block_on(Session::connect(&options.node, &credential))?;
    let style = Style {
        colour: !options.json && std::io::stdout().is_terminal(),
    };
    if let Some(line) = &options.command {
        let ok = tokio.block_on(run_line(&session, line, options.json, style))?;
        tokio.block_on(session.close());
        return Ok(if ok { 0 } else { 1 });
    }
    let config = rustyline::Config::builder()
        .max_history_size(HISTORY_LINES)
        .map_err(|e| ShellError::Config(e.to_string()))?
        .auto_add_history(true)
        .build();
    let mut editor: rustyline::Editor<Completion, rustyline::history::DefaultHistory> =
        rustyline::Editor::with_config(config).map_err(|e| ShellError::Config(e.to_string()))?;
    editor.set_helper(Some(Completion));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "connected to {} (`help` lists commands, Ctrl-D leaves)",
        options.node
    );
    let prompt = format!("{}> ", options.node);
    let mut failed = false;
    loop {
        match editor.readline(&prompt) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) if matches!(line.trim(), "exit" | "quit") => break,
            Ok(line) => {
                match tokio.block_on(run_line(&session, line.trim(), options.json, style)) {
                    Ok(ok) => failed |= !ok,
                    Err(error) => {
                        eprintln!("{error}");
                        return Ok(3);
                    }
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    tokio.block_on(session.close());
    Ok(if failed { 1 } else { 0 })
}
