//! The shell's commands: parsed from a line (pure, tested) and mapped to the node's own
//! HTTP API, so the shell and the API show the same thing from one implementation.

use std::fmt;

/// Most rows a list command prints (like recon's bounded lists): the node has up to
/// 100,000 actors; a terminal wants the top few.
pub const DEFAULT_ROWS: usize = 20;
/// Largest `top N` / `ps N` accepted.
pub const MAX_ROWS: usize = 1_000;
/// How long a shell trace may run, seconds (the API's maximum).
pub const TRACE_SECONDS: u64 = 600;
/// Longest `@NODE` chain: a command is forwarded once, never bounced on.
pub const MAX_FORWARDS: usize = 1;

/// What `top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopKey {
    /// Messages waiting in the mailbox.
    Mailbox,
    /// Messages handled.
    Messages,
    /// Restarts by the supervisor.
    Restarts,
    /// Bytes held, for actors that report it.
    Memory,
}

impl TopKey {
    /// The registry field it sorts by.
    pub fn field(self) -> &'static str {
        match self {
            TopKey::Mailbox => "mailbox_depth",
            TopKey::Messages => "messages_handled",
            TopKey::Restarts => "restarts",
            TopKey::Memory => "memory_bytes",
        }
    }
}

/// One shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// This node and its peers with their state.
    Nodes,
    /// The supervision tree, from a path.
    Tree(Option<String>),
    /// Every actor, one line each (bounded).
    Ps(usize),
    /// The actors that stand out by a key (bounded).
    Top(TopKey, usize),
    /// One actor in full.
    Info(String),
    Streams,
    Sessions,
    Peers,
    /// The cluster_ingest ownership table.
    Ingest,
    Balancer(String),
    Config,
    /// Follow an actor's events live, up to a count (Ctrl-C ends it sooner).
    Trace {
        path: String,
        count: usize,
    },
    /// Fail an actor on purpose: its supervisor restarts it.
    Kill {
        path: String,
        reason: Option<String>,
    },
    /// Run the command on another node, through this one.
    On {
        node: String,
        command: Box<Command>,
    },
}

/// Every command word, for help and completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("nodes", "this node and its peers with their state"),
    (
        "tree [PATH]",
        "the supervision tree with status and restarts",
    ),
    ("ps [N]", "actors, one line each (first N, default 20)"),
    (
        "top [mailbox|messages|restarts|memory] [N]",
        "the N actors with the most of it",
    ),
    ("info PATH", "one actor in full"),
    ("streams", "streams with their state"),
    ("sessions", "viewer sessions"),
    ("peers", "peer links: state, load, last seen"),
    (
        "ingest",
        "cluster_ingest: owner, epoch, capture_at per stream",
    ),
    ("balancer NAME", "a balancer's servers and recent decisions"),
    ("config", "the running config (secrets redacted)"),
    (
        "kill PATH [REASON]",
        "fail an actor; its supervisor restarts it (edit rights)",
    ),
    (
        "@NODE COMMAND",
        "run COMMAND on NODE (hostname or host:port) through this node",
    ),
    ("help", "this list"),
];

/// Why a line is not a command (the operator's fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn rows(word: Option<&str>) -> Result<usize, ParseError> {
    match word {
        None => Ok(DEFAULT_ROWS),
        Some(word) => match word.parse::<usize>() {
            Ok(n) if (1..=MAX_ROWS).contains(&n) => Ok(n),
            _ => Err(ParseError(format!("{word}: a count from 1 to {MAX_ROWS}"))),
        },
    }
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    parse_at_depth(line, 0)
}

fn parse_at_depth(line: &str, forwards: usize) -> Result<Command, ParseError> {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Err(ParseError("empty command (try `help`)".into()));
    };
    if let Some(node) = first.strip_prefix('@') {
        if node.is_empty() {
            return Err(ParseError("@ needs a node: `@HOST COMMAND`".into()));
        }
        if forwards >= MAX_FORWARDS {
            return Err(ParseError(
                "a command is forwarded once: one @NODE only".into(),
            ));
        }
        let rest: Vec<&str> = words.collect();
        let command = parse_at_depth(&rest.join(" "), forwards + 1)?;
        return Ok(Command::On {
            node: node.to_string(),
            command: Box::new(command),
        });
    }
    let args: Vec<&str> = words.collect();
    let no_args = |command: Command| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(ParseError(format!("{first} takes no arguments")))
        }
    };
    let one = |what: &str| -> Result<String, ParseError> {
        match args.as_slice() {
            [arg] => Ok((*arg).to_string()),
            _ => Err(ParseError(format!("{first} takes one {what}"))),
        }
    };
    match first {
        "help" | "?" => no_args(Command::Help),
        "nodes" => no_args(Command::Nodes),
        "tree" => match args.as_slice() {
            [] => Ok(Command::Tree(None)),
            [path] => Ok(Command::Tree(Some((*path).to_string()))),
            _ => Err(ParseError("tree takes at most one PATH".into())),
        },
        "ps" => match args.as_slice() {
            [] | [_] => Ok(Command::Ps(rows(args.first().copied())?)),
            _ => Err(ParseError("ps takes at most a count".into())),
        },
        "top" => {
            let (key, count) = match args.as_slice() {
                [] => (TopKey::Mailbox, None),
                [word] if word.parse::<usize>().is_ok() => (TopKey::Mailbox, Some(*word)),
                [key] => (top_key(key)?, None),
                [key, count] => (top_key(key)?, Some(*count)),
                _ => {
                    return Err(ParseError(
                        "top [mailbox|messages|restarts|memory] [N]".into(),
                    ));
                }
            };
            Ok(Command::Top(key, rows(count)?))
        }
        "info" => Ok(Command::Info(one("PATH")?)),
        "streams" => no_args(Command::Streams),
        "sessions" => no_args(Command::Sessions),
        "peers" => no_args(Command::Peers),
        "ingest" => no_args(Command::Ingest),
        "balancer" => Ok(Command::Balancer(one("NAME")?)),
        "config" => no_args(Command::Config),
        "trace" => match args.as_slice() {
            [path] | [path, _] => Ok(Command::Trace {
                path: (*path).to_string(),
                count: rows(args.get(1).copied())?,
            }),
            _ => Err(ParseError("trace PATH [N]".into())),
        },
        "kill" => match args.as_slice() {
            [] => Err(ParseError("kill PATH [REASON]".into())),
            [path, reason @ ..] => Ok(Command::Kill {
                path: (*path).to_string(),
                reason: (!reason.is_empty()).then(|| reason.join(" ")),
            }),
        },
        other => Err(ParseError(format!(
            "unknown command `{other}` (try `help`)"
        ))),
    }
}

fn top_key(word: &str) -> Result<TopKey, ParseError> {
    match word {
        "mailbox" => Ok(TopKey::Mailbox),
        "messages" => Ok(TopKey::Messages),
        "restarts" => Ok(TopKey::Restarts),
        "memory" => Ok(TopKey::Memory),
        other => Err(ParseError(format!(
            "top sorts by mailbox, messages, restarts or memory, not `{other}`"
        ))),
    }
}

/// An API call: (is it a POST, path with query).
pub type ApiCall = (bool, String);

/// Percent-encodes a query value (unreserved characters pass).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The API call behind a command (`None`: answered without one, or forwarded).
pub fn api_call(command: &Command) -> Option<ApiCall> {
    let get = |path: &str| Some((false, path.to_string()));
    match command {
        Command::Help | Command::On { .. } => None,
        Command::Nodes | Command::Peers => get("/streamer/api/v3/cluster/peers"),
        Command::Tree(None) | Command::Ps(_) | Command::Top(..) => get("/flotilla/api/actors"),
        Command::Tree(Some(path)) | Command::Info(path) => {
            get(&format!("/flotilla/api/actors/{}", path.trim_matches('/')))
        }
        Command::Streams => get("/streamer/api/v3/streams"),
        Command::Sessions => get("/streamer/api/v3/sessions"),
        Command::Ingest => get("/streamer/api/v3/cluster/ingest"),
        Command::Balancer(name) => get(&format!(
            "/streamer/api/v3/cluster/balancers/{}",
            encode(name)
        )),
        Command::Config => get("/streamer/api/v3/config"),
        Command::Trace { path, count } => get(&format!(
            "/flotilla/api/actors/{}/trace?count={count}&seconds={}",
            path.trim_matches('/'),
            TRACE_SECONDS
        )),
        Command::Kill { path, reason } => {
            let mut call = format!("/flotilla/api/actors/{}/kill", path.trim_matches('/'));
            if let Some(reason) = reason {
                call.push_str(&format!("?reason={}", encode(reason)));
            }
            Some((true, call))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_parse_and_map_to_the_api() {
        assert_eq!(parse("tree").unwrap(), Command::Tree(None));
        assert_eq!(
            api_call(&parse("tree node/streams").unwrap()).unwrap(),
            (false, "/flotilla/api/actors/node/streams".into())
        );
        assert_eq!(
            parse("top").unwrap(),
            Command::Top(TopKey::Mailbox, DEFAULT_ROWS)
        );
        assert_eq!(
            parse("top restarts 5").unwrap(),
            Command::Top(TopKey::Restarts, 5)
        );
        assert_eq!(parse("top 7").unwrap(), Command::Top(TopKey::Mailbox, 7));
        assert_eq!(
            parse("top memory 3").unwrap(),
            Command::Top(TopKey::Memory, 3)
        );
        assert_eq!(parse("ps 3").unwrap(), Command::Ps(3));
        assert_eq!(
            api_call(&parse("trace node/ingest 5").unwrap()).unwrap().1,
            "/flotilla/api/actors/node/ingest/trace?count=5&seconds=600"
        );
        assert_eq!(
            api_call(&parse("kill node/streams/cam01 testing the restart").unwrap()).unwrap(),
            (
                true,
                "/flotilla/api/actors/node/streams/cam01/kill?reason=testing%20the%20restart"
                    .into()
            )
        );
        assert_eq!(
            parse("@b tree").unwrap(),
            Command::On {
                node: "b".into(),
                command: Box::new(Command::Tree(None))
            }
        );
        assert_eq!(
            api_call(&parse("balancer a&b").unwrap()).unwrap().1,
            "/streamer/api/v3/cluster/balancers/a%26b"
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (line, says) in [
            ("", "empty command"),
            ("frobnicate", "unknown command `frobnicate`"),
            (
                "top heap",
                "top sorts by mailbox, messages, restarts or memory",
            ),
            ("ps 0", "a count from 1 to 1000"),
            ("ps 100000", "a count from 1 to 1000"),
            ("info", "info takes one PATH"),
            ("streams now", "streams takes no arguments"),
            ("@a @b tree", "forwarded once"),
            ("@ tree", "@ needs a node"),
            ("kill", "kill PATH"),
        ] {
            let error = parse(line).unwrap_err().0;
            assert!(error.contains(says), "{line:?}: {error}");
        }
    }

    proptest! {
        /// Any line parses or is refused with a message; never a panic.
        #[test]
        fn any_line_is_handled(line in "\\PC{0,80}") {
            match parse(&line) {
                Ok(command) => { let _ = api_call(&command); }
                Err(error) => prop_assert!(!error.0.is_empty()),
            }
        }
    }
}
