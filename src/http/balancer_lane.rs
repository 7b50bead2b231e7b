//! The balancer lane: redirects answered straight off the socket.
//!
//! A balancer's whole job is a flood of small `GET /NAME/STREAM/...` requests, each
//! answered with a 302. Through hyper and its service stack each one cost ~3× the CPU of
//! HAProxy's redirect (docs/benchmarks.md); most of that is generic machinery a
//! bodyless redirect never uses. So on a node with balancers every connection starts
//! here:
//!
//! - a request head is parsed with `httparse` (the parser hyper itself uses);
//! - a bodyless `GET`/`HEAD` for a balancer path, HTTP/1.0 or 1.1, with a plain
//!   origin-form target, is routed and answered by writing the response bytes directly
//!   (pipelined requests are answered in order, in one write);
//! - anything else — another path, another method, a body, an upgrade, HTTP/2, a head
//!   the lane does not fully understand, a balancer that chose this node — ends the
//!   lane: hyper takes the connection over with the unanswered bytes put back in front
//!   ([`super::rewind::Rewound`]), so it parses that request as if it had read it itself.
//!
//! The lane keeps the listener's limits: each request head must arrive whole within the
//! header deadline (counted from when the lane starts waiting for it), and a head larger
//! than the header limit goes to hyper, which refuses it with 431. On shutdown an idle
//! connection closes; one mid-request is answered first.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use flotilla_cluster::balancer::choose::NoServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::fast_path::{Decided, FastPath, X_FORWARDED_FOR};
use super::server::HttpLimits;
use crate::balancer::{RETRY_AFTER_SECONDS, Routed};

/// Most header lines the lane parses in one head; a head with more goes to hyper, whose
/// own limits decide (real players send 5–15).
pub const MAX_LANE_HEADERS: usize = 32;

/// Most `X-Forwarded-For` headers the lane reads in one head (each may list several
/// hops); a head with more goes to hyper, which reads them all.
pub const MAX_LANE_FORWARDED: usize = 4;

/// Read buffer a connection starts with; it grows up to the header limit only for a
/// head that needs it.
const READ_BUFFER_BYTES: usize = 4096;

/// What the lane makes of the bytes at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<'b> {
    /// Not a whole head yet.
    Partial,
    /// Not for the lane: hyper serves this request and the rest of the connection.
    Other,
    /// A request the lane answers.
    Simple(SimpleHead<'b>),
}

/// A bodyless `GET`/`HEAD` for a balancer path.
#[derive(Debug, PartialEq, Eq)]
pub struct SimpleHead<'b> {
    /// Bytes of the head, blank line included (the request ends there: it has no body).
    pub len: usize,
    /// `HEAD`: the answer has no body.
    pub head_only: bool,
    /// The path of the target.
    pub path: &'b str,
    /// The query of the target, without `?`.
    pub query: Option<&'b str>,
    /// The `X-Forwarded-For` values, in header order.
    pub forwarded: Forwarded<'b>,
    /// The `Origin` header (a player page's origin, for the CORS headers).
    pub origin: Option<&'b [u8]>,
    /// How the connection goes on after the answer.
    pub persistence: Persistence,
}

/// The `X-Forwarded-For` values of a head, kept on the stack (at most
/// [`MAX_LANE_FORWARDED`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded<'b> {
    values: [&'b str; MAX_LANE_FORWARDED],
    len: usize,
}

impl<'b> Forwarded<'b> {
    /// Adds a value; `false` when [`MAX_LANE_FORWARDED`] are kept already.
    fn push(&mut self, value: &'b str) -> bool {
        let Some(slot) = self.values.get_mut(self.len) else {
            return false;
        };
        *slot = value;
        self.len += 1;
        true
    }

    /// The values in header order.
    pub fn as_slice(&self) -> &[&'b str] {
        &self.values[..self.len]
    }
}

/// What happens to the connection after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: stays open.
    KeepAlive,
    /// HTTP/1.0 asking for keep-alive: stays open, and the answer says so.
    KeepAliveAnnounced,
    /// `Connection: close`, or HTTP/1.0 without keep-alive: closes after the answer.
    Close,
}

/// Characters of an origin-form target the lane takes as they are (RFC 3986 `pchar`,
/// `/` and `?`): anything else — a fragment, a space, raw non-ASCII — goes to hyper,
/// so the lane never accepts a target hyper would refuse.
fn plain_target_byte(byte: u8) -> bool {
    PLAIN_TARGET_BYTES[usize::from(byte)]
}

/// [`plain_target_byte`] as a table: every byte of every target is looked up.
const PLAIN_TARGET_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric();
        byte += 1;
    }
    let others = b"-._~!$&'()*+,;=:@/?%";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn lists(value: &[u8], token: &str) -> bool {
    value.split(|b| *b == b',').any(|item| {
        std::str::from_utf8(item).is_ok_and(|item| item.trim().eq_ignore_ascii_case(token))
    })
}

/// Classifies the head at the front of `buffer`; `claims` says whether a path is a
/// balancer's. Cheap: one `httparse` pass, no allocation.
pub fn classify<'b>(buffer: &'b [u8], claims: impl Fn(&str) -> bool) -> Head<'b> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_LANE_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // Known not to be ours as soon as the request line is: hand over early.
            return match (request.method, request.path) {
                (Some(method), Some(target))
                    if !matches!(method, "GET" | "HEAD")
                        || !claims(target.split('?').next().unwrap_or(target)) =>
                {
                    Head::Other
                }
                _ => Head::Partial,
            };
        }
        // Malformed, too many headers, HTTP/2's preface: hyper's to answer.
        Err(_) => return Head::Other,
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Head::Other;
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Head::Other,
    };
    if !target.starts_with('/') || !target.bytes().all(plain_target_byte) {
        return Head::Other;
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if !claims(path) {
        return Head::Other;
    }
    let mut close = false;
    let mut keep_alive = false;
    let mut forwarded = Forwarded::default();
    let mut origin = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            if lists(header.value, "upgrade") {
                return Head::Other;
            }
            close |= lists(header.value, "close");
            keep_alive |= lists(header.value, "keep-alive");
        } else if name.eq_ignore_ascii_case("content-length") {
            if header.value.trim_ascii() != b"0" {
                return Head::Other;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Head::Other;
        } else if name.eq_ignore_ascii_case("origin") {
            origin = Some(header.value);
        } else if name.eq_ignore_ascii_case(X_FORWARDED_FOR) {
            match std::str::from_utf8(header.value) {
                Ok(value) if !forwarded.push(value) => return Head::Other,
                Ok(_) => {}
                // hyper would drop it the same way (`to_str` fails): not a hop to trust.
                Err(_) => continue,
            }
        }
    }
    let persistence = match (version, close, keep_alive) {
        (_, true, _) => Persistence::Close,
        (1, false, _) => Persistence::KeepAlive,
        (_, false, true) => Persistence::KeepAliveAnnounced,
        (_, false, false) => Persistence::Close,
    };
    Head::Simple(SimpleHead {
        len,
        head_only,
        path,
        query,
        forwarded,
        origin,
        persistence,
    })
}

/// The `Date` header's value, formatted once per second.
#[derive(Debug, Default)]
struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    fn at(&mut self, now_ms: u64) -> &str {
        let second = now_ms / 1_000;
        if self.text.is_empty() || second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
        }
        &self.text
    }
}

/// A header value the lane may write: no control characters (a location built from a
/// parsed target and a configured URL has none, but it is checked, as hyper would).
fn writable_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends the answer to `out`: a redirect (`Some(location)` with its status) or a 503,
/// with `cors_lines` (the request's CORS header lines, `Cors::write_lines`).
pub fn encode(
    out: &mut Vec<u8>,
    answer: &Routed,
    head_only: bool,
    persistence: Persistence,
    date: &str,
    cors_lines: &[u8],
) {
    let reason;
    let (status_line, location, body): (&[u8], Option<&str>, &[u8]) = match answer {
        Routed::Redirect(307, location) => (
            b"HTTP/1.1 307 Temporary Redirect\r\n",
            Some(location.as_str()),
            b"",
        ),
        Routed::Redirect(_, location) => (b"HTTP/1.1 302 Found\r\n", Some(location.as_str()), b""),
        Routed::Unavailable(why) => {
            let why = match why {
                NoServer::AllDown => "every server is down",
                NoServer::AllFull => "every server is at its max_bitrate",
            };
            reason = serde_json::json!({
                "error": format!("no server can take this viewer now: {why}")
            })
            .to_string();
            (
                b"HTTP/1.1 503 Service Unavailable\r\n",
                None,
                reason.as_bytes(),
            )
        }
        Routed::Pass | Routed::Local(_) => return,
    };
    out.extend_from_slice(status_line);
    if let Some(location) = location.filter(|location| writable_value(location)) {
        out.extend_from_slice(b"location: ");
        out.extend_from_slice(location.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(b"content-type: application/json\r\nretry-after: ");
        out.extend_from_slice(RETRY_AFTER_SECONDS.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(cors_lines);
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAliveAnnounced => out.extend_from_slice(b"connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// How the lane ended.
#[derive(Debug)]
pub enum LaneEnd {
    /// The connection is done (closed by the client, `Connection: close`, the header
    /// deadline, shutdown, an I/O error).
    Closed,
    /// hyper serves the rest: `prefix` is what the lane read and did not answer, and
    /// `decided` the balancer's choice of this node for the first request, if it made one.
    HandOver {
        /// Bytes to replay before the socket's.
        prefix: Bytes,
        /// The first request's decision (serve here), so it is not taken twice.
        decided: Option<Decided>,
    },
}

/// Serves `stream` from `remote` in the lane until it closes or hyper must take over.
pub async fn serve_lane<S>(
    stream: &mut S,
    fast: &FastPath,
    remote: SocketAddr,
    limits: &HttpLimits,
    shutdown: &mut watch::Receiver<bool>,
    tls_port: Option<u16>,
) -> LaneEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut output: Vec<u8> = Vec::with_capacity(512);
    let mut date = DateCache::default();
    let mut cors_lines: Vec<u8> = Vec::new();
    let mut deadline = HeadDeadline::new(limits.header_read_timeout);
    let stop = super::server::stop_requested(shutdown);
    tokio::pin!(stop);
    loop {
        let next = match classify(&input, |path| fast.claims(path)) {
            Head::Partial if input.len() >= limits.max_header_bytes => {
                // hyper refuses the oversized head (431).
                Next::HandOver(None)
            }
            Head::Partial => Next::NeedMore,
            Head::Other => Next::HandOver(None),
            Head::Simple(head) => {
                let routed = fast.route(
                    false,
                    head.path,
                    head.query,
                    remote,
                    head.forwarded.as_slice().iter().copied(),
                    tls_port,
                );
                match routed {
                    Routed::Redirect(..) | Routed::Unavailable(_) => {
                        let date = date.at(fast.wall_clock_ms());
                        cors_lines.clear();
                        fast.cors().write_lines(head.origin, &mut cors_lines);
                        encode(
                            &mut output,
                            &routed,
                            head.head_only,
                            head.persistence,
                            date,
                            &cors_lines,
                        );
                        Next::Answered(head.len, head.persistence)
                    }
                    Routed::Local(path) => Next::HandOver(Some(Decided(path))),
                    // The balancer has no table yet: hyper's router answers.
                    Routed::Pass => Next::HandOver(None),
                }
            }
        };
        // What was answered goes out before anything else happens to the connection.
        let flush = !matches!(
            next,
            Next::Answered(_, Persistence::KeepAlive | Persistence::KeepAliveAnnounced)
        );
        if flush && !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return LaneEnd::Closed;
            }
            output.clear();
        }
        match next {
            Next::Answered(_, Persistence::Close) => {
                let _ = stream.shutdown().await;
                return LaneEnd::Closed;
            }
            // On to the next request in the buffer.
            Next::Answered(len, _) => {
                input.advance(len);
                deadline.answered();
                continue;
            }
            Next::HandOver(decided) => {
                return LaneEnd::HandOver {
                    prefix: input.freeze(),
                    decided,
                };
            }
            Next::NeedMore => {}
        }
        deadline.waiting(|| fast.now());
        let idle = input.is_empty();
        tokio::select! {
            biased;
            read = stream.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return LaneEnd::Closed,
                Ok(_) => {}
            },
            () = deadline.timer.as_mut() => {
                if deadline.passed(fast.now()) {
                    return LaneEnd::Closed;
                }
            }
            () = &mut stop, if idle => return LaneEnd::Closed,
        }
    }
}

/// The header deadline of the head being waited for, on one timer per connection.
///
/// Re-arming a timer for every request of a keep-alive flood costs more than answering
/// it, so the timer is armed lazily: it is set once, and when it fires for a head that
/// was answered meanwhile it is moved to the deadline of the head waited for now. It
/// never fires late: its deadline is never after the current head's.
struct HeadDeadline {
    timeout: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the lane started waiting for the current head (none while answering).
    waiting_since: Option<tokio::time::Instant>,
}

impl HeadDeadline {
    fn new(timeout: Duration) -> HeadDeadline {
        HeadDeadline {
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            waiting_since: None,
        }
    }

    /// The lane waits for a head: its clock starts now unless it started already.
    fn waiting(&mut self, now: impl FnOnce() -> tokio::time::Instant) {
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now());
        }
    }

    /// The head waited for was answered.
    fn answered(&mut self) {
        self.waiting_since = None;
    }

    /// The timer fired at `now`: whether the current head is late; if not, the timer
    /// moves to its deadline.
    fn passed(&mut self, now: tokio::time::Instant) -> bool {
        let due = self.waiting_since.unwrap_or(now) + self.timeout;
        if now >= due {
            return true;
        }
        self.timer.as_mut().reset(due);
        false
    }
}

/// What the lane does after looking at the front of its buffer.
enum Next {
    /// A request of this many bytes was answered (its answer is in the output buffer).
    Answered(usize, Persistence),
    /// hyper serves the rest, with the balancer's decision for the first request if taken.
    HandOver(Option<Decided>),
    /// No whole head yet: read more.
    NeedMore,
}

#[cfg(test)]
mod tests;
