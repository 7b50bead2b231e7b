//! From statements to the typed model.
//!
//! Every block is read the same way: each statement's name is looked up in the directive
//! registry for the block's context (unknown names are refused with the nearest known one,
//! and names that belong elsewhere say where), then its arguments are checked against the
//! directive's form. Problems are collected, not thrown, so one run reports them all; a
//! statement with an error is skipped and the rest of the block is still read.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use super::declared::Declared;
use super::diagnostic::{Diagnostic, nearest};
use super::directives::{self, Context, Status};
use super::model::*;
use super::source::Span;
use super::syntax::{Arg, Statement};
use super::values::{
    AccessLog, Bitrate, Cidr, Millis, Seconds, Secret, Timeout, Value, parse_list,
};

type Result<T> = std::result::Result<T, Diagnostic>;

/// Collects diagnostics and the uses of not-yet-active directives while a config is read.
#[derive(Default)]
pub struct Reader {
    pub diagnostics: Vec<Diagnostic>,
    /// First use and count of each directive that is parsed but not active, by name.
    pub not_active: BTreeMap<&'static str, (Span, usize)>,
    /// Every `capture_at=` reference, checked against the known nodes once all are read.
    pub capture_refs: Vec<(HostPort, Span)>,
    /// Where each balancer (by index in `Config::balancers`) was declared.
    pub balancer_spans: Vec<Span>,
    /// Where each source (by index in `Config::sources`) was declared.
    pub source_spans: Vec<Span>,
    /// Where the global `cluster_key` was set.
    pub cluster_key_span: Option<Span>,
    /// Names, addresses and prefixes declared so far, for the uniqueness checks.
    pub declared: Declared,
}

impl Reader {
    /// Reads the top level of a configuration into `config` (which may already hold the
    /// statements of earlier files: fragments are merged into one model).
    pub fn read_global(&mut self, statements: &[Statement], config: &mut Config) {
        for statement in statements {
            let Some(name) = self.resolve(Context::Global, statement) else {
                continue;
            };
            if let Err(diagnostic) = read_global_statement(self, name, statement, config) {
                self.diagnostics.push(diagnostic);
            }
        }
    }

    /// The canonical name of `statement` in `context`, or `None` after reporting it unknown.
    fn resolve(&mut self, context: Context, statement: &Statement) -> Option<&'static str> {
        match directives::lookup(context, &statement.name) {
            Some(info) => {
                if info.status == Status::NotActive {
                    let entry = self
                        .not_active
                        .entry(info.name)
                        .or_insert((statement.name_span, 0));
                    entry.1 += 1;
                }
                Some(info.name)
            }
            None => {
                let mut diagnostic = Diagnostic::error(
                    statement.name_span,
                    format!(
                        "unknown directive `{}` in the {}",
                        statement.name,
                        context.title()
                    ),
                );
                if let Some(best) = nearest(&statement.name, directives::names_in(context)) {
                    diagnostic = diagnostic.help(format!("did you mean `{best}`?"));
                } else if let Some(home) = directives::home_of(&statement.name) {
                    diagnostic = diagnostic.help(format!(
                        "`{}` belongs in a {}, not in the {}",
                        statement.name,
                        home.title(),
                        context.title()
                    ));
                }
                self.diagnostics.push(diagnostic);
                None
            }
        }
    }

    /// Reads each statement of a block in `context` with `read`, collecting errors.
    fn read_block<T>(
        &mut self,
        context: Context,
        statements: &[Statement],
        target: &mut T,
        mut read: impl FnMut(&mut Reader, &'static str, &Statement, &mut T) -> Result<()>,
    ) {
        for statement in statements {
            let Some(name) = self.resolve(context, statement) else {
                continue;
            };
            if let Err(diagnostic) = read(self, name, statement, target) {
                self.diagnostics.push(diagnostic);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Argument helpers. Each returns a diagnostic that points at the offending word.

fn parse_at<T: Value>(text: &str, span: Span) -> Result<T> {
    T::parse_value(text)
        .map_err(|error| Diagnostic::error(span, error.to_string()).expected(T::EXPECTED))
}

fn no_block(statement: &Statement) -> Result<()> {
    match &statement.block {
        None => Ok(()),
        Some(_) => Err(Diagnostic::error(
            statement.span,
            format!("`{}` does not take a block", statement.name),
        )
        .expected("`;` after the arguments")),
    }
}

fn no_options(statement: &Statement) -> Result<()> {
    match statement.options().next() {
        None => Ok(()),
        Some((key, _, arg)) => Err(Diagnostic::error(
            arg.span,
            format!("`{}` takes no `{key}=` option", statement.name),
        )),
    }
}

/// Exactly `count` positional arguments and nothing else.
fn positionals(
    statement: &Statement,
    min: usize,
    max: usize,
    what: &str,
) -> Result<Vec<(String, Span)>> {
    no_block(statement)?;
    no_options(statement)?;
    let found: Vec<(String, Span)> = statement
        .positionals()
        .map(|(text, arg)| (text.to_string(), arg.span))
        .collect();
    if found.len() < min {
        return Err(Diagnostic::error(
            statement.after_name(),
            format!("`{}` is missing its arguments", statement.name),
        )
        .expected(what.to_string()));
    }
    if found.len() > max {
        return Err(Diagnostic::error(
            found[max].1,
            format!("`{}` takes at most {max} argument(s)", statement.name),
        )
        .expected(what.to_string()));
    }
    Ok(found)
}

/// `name VALUE;`
fn single<T: Value>(statement: &Statement) -> Result<T> {
    let args = positionals(statement, 1, 1, T::EXPECTED)?;
    parse_at(&args[0].0, args[0].1)
}

/// `name;` (true) or `name BOOL;`
fn flag(statement: &Statement) -> Result<bool> {
    let args = positionals(statement, 0, 1, bool::EXPECTED)?;
    match args.first() {
        None => Ok(true),
        Some((text, span)) => parse_at(text, *span),
    }
}

/// Stores `value` in a single-valued field, refusing a second occurrence in the same block.
fn set_once<T>(slot: &mut Option<T>, value: T, statement: &Statement) -> Result<()> {
    if slot.is_some() {
        return Err(Diagnostic::error(
            statement.name_span,
            format!("`{}` is given twice", statement.name),
        )
        .help("keep one; a later value would silently win in other servers"));
    }
    *slot = Some(value);
    Ok(())
}

/// `key=value` options of `statement`, checked against `allowed`.
fn checked_options<'s>(
    statement: &'s Statement,
    allowed: &[&'static str],
) -> Result<Vec<(&'static str, &'s str, Span)>> {
    let mut out = Vec::new();
    for (key, value, arg) in statement.options() {
        let Some(known) = allowed.iter().find(|k| **k == key) else {
            let mut diagnostic = Diagnostic::error(
                arg.span,
                format!("`{}` has no option `{key}`", statement.name),
            );
            diagnostic = match nearest(key, allowed.iter().copied()) {
                Some(best) => diagnostic.help(format!("did you mean `{best}=`?")),
                None => diagnostic.expected(format!("one of: {}", allowed.join(", "))),
            };
            return Err(diagnostic);
        };
        if out.iter().any(|(k, _, _)| k == known) {
            return Err(Diagnostic::error(
                arg.span,
                format!("option `{key}` is given twice"),
            ));
        }
        out.push((*known, value, arg.span));
    }
    Ok(out)
}

fn required_name(statement: &Statement, what: &str) -> Result<(String, Span)> {
    match statement.positionals().next() {
        Some((text, arg)) if !text.is_empty() => Ok((text.to_string(), arg.span)),
        _ => Err(Diagnostic::error(
            statement.after_name(),
            format!("`{}` needs {what}", statement.name),
        )
        .expected(what.to_string())),
    }
}

fn required_block(statement: &Statement) -> Result<&[Statement]> {
    statement.block.as_deref().ok_or_else(|| {
        Diagnostic::error(
            statement.span,
            format!("`{}` needs a `{{ … }}` block", statement.name),
        )
        .expected("`{` after the arguments")
    })
}

/// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
/// `FIRST-LAST`: an inclusive range of non-zero ports, first ≤ last.
fn parse_port_range(text: &str, span: Span) -> Result<crate::config::model::PortRange> {
    let bad = || {
        Diagnostic::error(span, format!("`{text}` is not a port range"))
            .help("write FIRST-LAST, e.g. `20000-20999`: ports 1..65535, FIRST ≤ LAST")
    };
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok(crate::config::model::PortRange { first, last })
}

pub fn parse_host_port(text: &str, span: Span) -> Result<HostPort> {
    let error = || {
        Diagnostic::error(span, format!("`{text}` is not a host or host:port"))
            .expected("a host name or address, optionally with :PORT")
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(error)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(error)?)),
        }
    } else if text.matches(':').count() > 1 {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return Err(error());
    }
    let port = match port {
        None => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(error)?,
        ),
    };
    Ok(HostPort {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn parse_listen(text: &str, span: Span) -> Result<ListenAddr> {
    let error = || {
        Diagnostic::error(span, format!("`{text}` is not a listen address"))
            .expected("PORT, IP:PORT or [IPv6]:PORT")
    };
    let port_of = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(error)
    };
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(ListenAddr {
            ip: None,
            port: port_of(text)?,
        });
    }
    let socket = std::net::SocketAddr::from_str(text).map_err(|_| error())?;
    if socket.port() == 0 {
        return Err(error());
    }
    Ok(ListenAddr {
        ip: Some(socket.ip()),
        port: socket.port(),
    })
}

/// Stream names: the node's one rule (`media::name`, spec §1.2).
fn check_stream_name(name: &str, span: Span) -> Result<()> {
    crate::media::name::check(name).map_err(|why| {
        Diagnostic::error(span, format!("`{name}` is not a valid stream name: {why}"))
            .expected(crate::media::name::STREAM_NAME_RULE)
    })
}

/// Most origins `cors_allow_origin` lists (each response compares the request's origin
/// with them).
pub const MAX_CORS_ORIGINS: usize = 64;

const CORS_ORIGIN_EXPECTED: &str =
    "`*`, `off`, or origins like `https://www.example.com` (scheme, host, optional port; no path)";

/// `*` and `off` stand alone; an origin is `http(s)://host[:port]`, as browsers send it.
fn check_cors_origin(text: &str, alone: bool, span: Span) -> Result<()> {
    if text == "*" || text == "off" {
        return if alone {
            Ok(())
        } else {
            Err(
                Diagnostic::error(span, format!("`{text}` cannot be listed with origins"))
                    .expected(CORS_ORIGIN_EXPECTED),
            )
        };
    }
    let authority = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let valid = authority.is_some_and(|authority| {
        !authority.is_empty()
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    });
    if valid {
        Ok(())
    } else {
        Err(
            Diagnostic::error(span, format!("`{text}` is not an origin"))
                .expected(CORS_ORIGIN_EXPECTED),
        )
    }
}

fn choose<T: Copy>(text: &str, span: Span, names: &[&str], values: &[T], what: &str) -> Result<T> {
    match names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        Some(index) => Ok(values[index]),
        None => {
            let diagnostic = Diagnostic::error(span, format!("unknown {what} `{text}`"))
                .expected(format!("one of: {}", names.join(", ")));
            Err(diagnostic.maybe_help(
                nearest(text, names.iter().copied()).map(|b| format!("did you mean `{b}`?")),
            ))
        }
    }
}

fn raw_args(statement: &Statement) -> Result<RawArgs> {
    no_block(statement)?;
    Ok(RawArgs {
        words: statement
            .positionals()
            .map(|(t, _)| t.to_string())
            .collect(),
        options: statement
            .options()
            .map(|(k, v, _)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

// ------------------------------------------------------------------------------------------
// Top level.

fn read_global_statement(
    reader: &mut Reader,
    name: &'static str,
    statement: &Statement,
    config: &mut Config,
) -> Result<()> {
    let c = config;
    match name {
        "hostname" => {
            let (text, span) = positionals(statement, 1, 1, "a host name")?.remove(0);
            let host = parse_host_port(&text, span)?;
            if host.port.is_some() {
                return Err(Diagnostic::error(span, "a hostname has no port")
                    .help("peers name this node by host and port; `hostname` is the name alone"));
            }
            set_once(&mut c.hostname, host.host, statement)
        }
        "http" | "https" => {
            let listener = read_http_listener(reader, statement)?;
            if !reader.declared.listeners.insert(listener.listen) {
                return Err(Diagnostic::error(
                    statement.span,
                    format!("`{}` is already a listener", listener.listen),
                ));
            }
            let list = if name == "http" {
                &mut c.http
            } else {
                &mut c.https
            };
            list.push(listener);
            Ok(())
        }
        "rtmp" | "rtmps" | "rtsp" | "rtsps" | "srt" => {
            let (text, span) = positionals(statement, 1, 1, "PORT or IP:PORT")?.remove(0);
            let listen = parse_listen(&text, span)?;
            match name {
                "rtmp" => c.rtmp.push(listen),
                "rtmps" => c.rtmps.push(listen),
                "rtsp" => c.rtsp.push(listen),
                "srt" => c.srt.push(listen),
                _ => c.rtsps.push(listen),
            }
            Ok(())
        }
        "cluster_port" => {
            let port: u16 = single(statement)?;
            if port == 0 {
                return Err(Diagnostic::error(
                    statement.span,
                    "port 0 cannot be dialled by peers",
                ));
            }
            set_once(&mut c.cluster_port, port, statement)
        }
        "webrtc_ports" => {
            let (text, span) = positionals(statement, 1, 1, "FIRST-LAST (UDP ports)")?.remove(0);
            let ports = parse_port_range(&text, span)?;
            set_once(&mut c.webrtc_ports, ports, statement)
        }
        "webrtc_address" => {
            let (text, span) = positionals(statement, 1, 1, "an IP address")?.remove(0);
            let address = text.parse::<std::net::IpAddr>().map_err(|_| {
                Diagnostic::error(span, format!("`{text}` is not an IP address"))
                    .help("WebRTC clients are given this address in the SDP answer: an IPv4 or IPv6 address, no name, no port")
            })?;
            if address.is_unspecified() || address.is_multicast() {
                return Err(Diagnostic::error(
                    span,
                    format!("`{address}` cannot be sent media to"),
                ));
            }
            set_once(&mut c.webrtc_address, address, statement)
        }
        "cluster_ingest_minority_restraint" => set_once(
            &mut c.cluster_ingest_minority_restraint,
            flag(statement)?,
            statement,
        ),
        "loglevel" => {
            let (text, span) = positionals(statement, 1, 1, "a log level")?.remove(0);
            let level = choose(
                &text,
                span,
                &LogLevel::NAMES,
                &[
                    LogLevel::Debug,
                    LogLevel::Info,
                    LogLevel::Notice,
                    LogLevel::Warning,
                    LogLevel::Error,
                ],
                "log level",
            )?;
            set_once(&mut c.loglevel, level, statement)
        }
        "logrequests" => {
            let args = positionals(statement, 0, 1, AccessLog::EXPECTED)?;
            let value = match args.first() {
                None => AccessLog::On(true),
                Some((text, span)) => parse_at(text, *span)?,
            };
            set_once(&mut c.logrequests, value, statement)
        }
        "nvidia_monitor" => set_once(&mut c.nvidia_monitor, flag(statement)?, statement),
        "rtmp_redirect" => set_once(&mut c.rtmp_redirect, flag(statement)?, statement),
        "cluster_play" => set_once(&mut c.cluster_play, single(statement)?, statement),
        "total_bandwidth" => set_once(&mut c.total_bandwidth, single(statement)?, statement),
        "auth_token" => set_once(&mut c.auth_token, single(statement)?, statement),
        "max_sessions" => set_once(&mut c.max_sessions, single(statement)?, statement),
        "auto_token" => {
            let (text, span) = positionals(statement, 1, 1, "uuid, blank or false")?.remove(0);
            let mode = choose(
                &text,
                span,
                &["uuid", "blank", "false"],
                &[AutoToken::Uuid, AutoToken::Blank, AutoToken::Disabled],
                "auto_token mode",
            )?;
            set_once(&mut c.auto_token, mode, statement)
        }
        "no_auto_token" => {
            positionals(statement, 0, 0, "no arguments")?;
            set_once(&mut c.auto_token, AutoToken::Disabled, statement)
        }
        "cluster_key" => {
            reader.cluster_key_span = Some(statement.span);
            set_once(&mut c.cluster_key, single(statement)?, statement)
        }
        "edit_auth" | "view_auth" => {
            let args = positionals(statement, 2, 2, "USER PASSWORD")?;
            let credentials = Credentials {
                user: args[0].0.clone(),
                password: parse_at::<Secret>(&args[1].0, args[1].1)?,
            };
            let slot = if name == "edit_auth" {
                &mut c.edit_auth
            } else {
                &mut c.view_auth
            };
            set_once(slot, credentials, statement)
        }
        "api_allowed_from" => {
            let args = positionals(statement, 1, usize::MAX, Cidr::EXPECTED)?;
            for (text, span) in args {
                c.api_allowed_from.push(parse_at(&text, span)?);
            }
            Ok(())
        }
        "shell_allowed_from" => {
            let args = positionals(statement, 1, usize::MAX, Cidr::EXPECTED)?;
            for (text, span) in args {
                c.shell_allowed_from.push(parse_at(&text, span)?);
            }
            Ok(())
        }
        "cors_allow_origin" => {
            let args = positionals(statement, 1, MAX_CORS_ORIGINS, CORS_ORIGIN_EXPECTED)?;
            let alone = args.len() == 1;
            for (text, span) in args {
                check_cors_origin(&text, alone, span)?;
                c.cors_allow_origin.push(text);
            }
            Ok(())
        }
        "trusted_proxies" => {
            let args = positionals(statement, 1, usize::MAX, Cidr::EXPECTED)?;
            for (text, span) in args {
                c.trusted_proxies.push(parse_at(&text, span)?);
            }
            Ok(())
        }
        "pulsedb" => set_once(&mut c.pulsedb, single(statement)?, statement),
        "session_log" => set_once(&mut c.session_log, single(statement)?, statement),
        "url_prefix" => set_once(&mut c.url_prefix, single(statement)?, statement),
        "geoip" => set_once(&mut c.geoip, single(statement)?, statement),
        "tls_certificate" => set_once(&mut c.tls_certificate, single(statement)?, statement),
        "tls_key" => set_once(&mut c.tls_key, single(statement)?, statement),
        "event_sink" => {
            let sink = read_event_sink(reader, statement)?;
            unique(
                !reader.declared.add("event_sink", &sink.name),
                statement,
                "event_sink",
                &sink.name,
            )?;
            c.event_sinks.push(sink);
            Ok(())
        }
        "peer" => {
            let peer = read_peer(reader, statement)?;
            unique(
                !reader.declared.peers.insert(peer.address.clone()),
                statement,
                "peer",
                &peer.address.to_string(),
            )?;
            c.peers.push(peer);
            Ok(())
        }
        "source" => {
            let source = read_source(reader, statement)?;
            let name = match &source.prefix {
                Some(prefix) => format!(
                    "{}/{}",
                    super::identity::node_key(&source.address),
                    prefix.trim_matches('/')
                ),
                None => super::identity::node_key(&source.address),
            };
            unique(
                !reader.declared.add("source", &name),
                statement,
                "source",
                &name,
            )?;
            reader.source_spans.push(statement.span);
            c.sources.push(source);
            Ok(())
        }
        "balancer" => {
            let balancer = read_balancer(reader, statement)?;
            unique(
                !reader.declared.add("balancer", &balancer.name),
                statement,
                "balancer",
                &balancer.name,
            )?;
            reader.balancer_spans.push(statement.span);
            c.balancers.push(balancer);
            Ok(())
        }
        "stream" | "ondemand" => {
            let stream = read_stream(reader, statement, name == "ondemand")?;
            unique(
                !reader.declared.add("stream", &stream.name),
                statement,
                "stream",
                &stream.name,
            )?;
            c.streams.push(stream);
            Ok(())
        }
        "template" => {
            let template = read_template(reader, statement)?;
            unique(
                reader.declared.has("template", &template.name),
                statement,
                "template",
                &template.name,
            )?;
            if let Some(prefix) = template
                .prefixes
                .iter()
                .find(|p| reader.declared.prefixes.contains(*p))
            {
                return Err(Diagnostic::error(
                    statement.span,
                    format!("prefix `{prefix}` already belongs to another template"),
                )
                .help("a published name must match one template only"));
            }
            reader.declared.add("template", &template.name);
            reader
                .declared
                .prefixes
                .extend(template.prefixes.iter().cloned());
            c.templates.push(template);
            Ok(())
        }
        "vod" => {
            let vod = read_vod(reader, statement)?;
            unique(
                !reader.declared.add("vod location", &vod.name),
                statement,
                "vod location",
                &vod.name,
            )?;
            c.vods.push(vod);
            Ok(())
        }
        "cache" => {
            let cache = read_global_cache(statement)?;
            unique(
                !reader.declared.add("cache", &cache.name),
                statement,
                "cache",
                &cache.name,
            )?;
            c.caches.push(cache);
            Ok(())
        }
        "auth_backend" => {
            let backend = read_auth_backend(reader, statement)?;
            unique(
                !reader.declared.add("auth_backend", &backend.name),
                statement,
                "auth_backend",
                &backend.name,
            )?;
            c.auth_backends.push(backend);
            Ok(())
        }
        "dvr" => {
            let dvr = read_dvr(reader, statement)?;
            unique(
                !reader.declared.add("dvr", &dvr.name),
                statement,
                "dvr",
                &dvr.name,
            )?;
            c.dvrs.push(dvr);
            Ok(())
        }
        other => {
            unreachable!("registry lists `{other}` at top level but the schema does not read it")
        }
    }
}

/// Refuses a second object of the same kind and name; `taken`: one was declared before
/// (asked of [`Declared`], never by scanning the model's lists).
fn unique(taken: bool, statement: &Statement, kind: &str, name: &str) -> Result<()> {
    if taken {
        return Err(Diagnostic::error(
            statement.name_span.to(statement
                .positionals()
                .next()
                .map_or(statement.name_span, |(_, a)| a.span)),
            format!("{kind} `{name}` is declared twice"),
        )
        .help(format!(
            "each {kind} name must be unique across the file and its fragments"
        )));
    }
    Ok(())
}

fn read_http_listener(reader: &mut Reader, statement: &Statement) -> Result<HttpListener> {
    no_options(statement)?;
    let args: Vec<(String, Span)> = statement
        .positionals()
        .map(|(t, a)| (t.to_string(), a.span))
        .collect();
    let [(text, span)] = args.as_slice() else {
        return Err(Diagnostic::error(
            statement.after_name(),
            format!("`{}` takes exactly one listen address", statement.name),
        )
        .expected("PORT, IP:PORT or [IPv6]:PORT"));
    };
    let mut listener = HttpListener {
        listen: parse_listen(text, *span)?,
        api: None,
        redirect_https: None,
        read_timeout: None,
        write_timeout: None,
    };
    if let Some(block) = &statement.block {
        reader.read_block(
            Context::Http,
            block,
            &mut listener,
            |_, name, s, l| match name {
                "api" => set_once(&mut l.api, flag(s)?, s),
                "redirect_https" => set_once(&mut l.redirect_https, flag(s)?, s),
                "read_timeout" => set_once(&mut l.read_timeout, single(s)?, s),
                "write_timeout" => set_once(&mut l.write_timeout, single(s)?, s),
                other => unreachable!("http block: {other}"),
            },
        );
    }
    Ok(listener)
}

// ------------------------------------------------------------------------------------------
// Streams, templates, sources.

/// Options of `input URL …` (also accepted in the old `url URL source_timeout 3;` form).
const INPUT_OPTIONS: [&str; 15] = [
    "transport",
    "program",
    "pids",
    "priority",
    "source_timeout",
    "frames_timeout",
    "timeout",
    "cluster_key",
    "max_bitrate",
    "remote_dvr",
    "user_agent",
    "headers",
    "bind_ip",
    "via",
    "output_audio",
];

/// The input options the node acts on; the others are refused, never ignored.
const ACTIVE_INPUT_OPTIONS: [&str; 5] =
    ["priority", "source_timeout", "transport", "program", "pids"];

/// Most PIDs a `pids=` list names: a program's video and its audio tracks.
pub const MAX_SELECTED_PIDS: usize = 16;

/// Schemes whose inputs are MPEG-TS streams a `program=N` can select from.
const PROGRAM_SCHEMES: [&str; 5] = ["udp://", "tshttp://", "http://", "file://", "srt://"];

fn read_input(statement: &Statement) -> Result<Input> {
    no_block(statement)?;
    let mut words = statement.positionals();
    let Some((url, url_arg)) = words.next() else {
        return Err(
            Diagnostic::error(statement.after_name(), "an input needs a URL")
                .expected("a URL such as tshttp://host/path, udp://239.0.0.1:1234 or publish://"),
        );
    };
    check_url(url, url_arg)?;
    let mut pairs: Vec<(String, String, Span)> = statement
        .options()
        .map(|(k, v, a)| (k.to_string(), v.to_string(), a.span))
        .collect();
    // The old documentation writes options as separate words: `url publish:// source_timeout 3;`.
    let rest: Vec<(&str, &Arg)> = words.collect();
    for pair in rest.chunks(2) {
        match pair {
            [(key, key_arg), (value, value_arg)] if INPUT_OPTIONS.contains(key) => {
                pairs.push((
                    key.to_string(),
                    value.to_string(),
                    key_arg.span.to(value_arg.span),
                ));
            }
            [(word, arg), ..] => {
                return Err(Diagnostic::error(
                    arg.span,
                    format!("unexpected `{word}` after the input URL"),
                )
                .expected("key=value options such as priority=2 or source_timeout=5"));
            }
            [] => {}
        }
    }
    let mut input = Input {
        url: url.to_string(),
        ..Input::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (key, value, span) in pairs {
        if seen.contains(&key) {
            return Err(Diagnostic::error(
                span,
                format!("option `{key}` is given twice"),
            ));
        }
        seen.push(key.clone());
        if INPUT_OPTIONS.contains(&key.as_str()) && !ACTIVE_INPUT_OPTIONS.contains(&key.as_str()) {
            return Err(Diagnostic::error(
                span,
                format!("input option `{key}` is not active yet: the node would ignore it"),
            )
            .expected("priority=N, source_timeout=SECONDS, (MPEG-TS inputs) program=N and pids=P,P… or (rtsp://) transport=tcp|udp, the options inputs honour"));
        }
        match key.as_str() {
            "priority" => input.priority = Some(parse_at(&value, span)?),
            "source_timeout" => input.source_timeout = Some(parse_at(&value, span)?),
            "frames_timeout" => input.frames_timeout = Some(parse_at(&value, span)?),
            "timeout" => input.timeout = Some(parse_at(&value, span)?),
            "cluster_key" => input.cluster_key = Some(parse_at(&value, span)?),
            "max_bitrate" => input.max_bitrate = Some(parse_at(&value, span)?),
            "remote_dvr" => {
                input.remote_dvr = Some(choose(
                    &value,
                    span,
                    &RemoteDvr::NAMES,
                    &[RemoteDvr::Chain, RemoteDvr::Nochain, RemoteDvr::None],
                    "remote_dvr mode",
                )?)
            }
            "user_agent" => input.user_agent = Some(value),
            "headers" => input.headers = Some(value),
            "bind_ip" => {
                input.bind_ip = Some(IpAddr::from_str(&value).map_err(|_| {
                    Diagnostic::error(span, format!("`{value}` is not an IP address"))
                })?)
            }
            "via" => input.via = Some(value),
            "program" => {
                if !PROGRAM_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
                    return Err(Diagnostic::error(
                        span,
                        "`program` applies to MPEG-TS inputs: udp://, tshttp://, http://, file://, srt://",
                    ));
                }
                let number: u16 = parse_at(&value, span)?;
                if number == 0 {
                    return Err(Diagnostic::error(
                        span,
                        "program 0 is the network information table, not a program",
                    ));
                }
                input.program = Some(number);
            }
            "pids" => {
                if !PROGRAM_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
                    return Err(Diagnostic::error(
                        span,
                        "`pids` applies to MPEG-TS inputs: udp://, tshttp://, http://, file://, srt://",
                    ));
                }
                input.pids = parse_pids(&value, span)?;
            }
            "transport" => {
                if !url.starts_with("rtsp://") {
                    return Err(Diagnostic::error(
                        span,
                        "`transport` applies to rtsp:// inputs only",
                    ));
                }
                input.transport = Some(choose(
                    &value,
                    span,
                    &RtpTransport::NAMES,
                    &[RtpTransport::Tcp, RtpTransport::Udp],
                    "RTP transport",
                )?);
            }
            _ => {
                let allowed: Vec<&str> = ACTIVE_INPUT_OPTIONS.to_vec();
                return Err(
                    Diagnostic::error(span, format!("inputs have no option `{key}`"))
                        .maybe_help(
                            nearest(&key, allowed.iter().copied())
                                .map(|b| format!("did you mean `{b}=`?")),
                        )
                        .expected(format!("one of: {}", allowed.join(", "))),
                );
            }
        }
    }
    Ok(input)
}

/// `pids=256,257` or `pids=0x100,0x101`: elementary stream PIDs (0x10..=0x1ffe).
fn parse_pids(value: &str, span: Span) -> Result<Vec<u16>> {
    let mut pids = Vec::new();
    for text in value.split(',') {
        let text = text.trim();
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => u16::from_str_radix(hex, 16).ok(),
            None => text.parse::<u16>().ok(),
        };
        let pid = parsed
            .filter(|pid| (0x10..=0x1ffe).contains(pid))
            .ok_or_else(|| {
                Diagnostic::error(
                    span,
                    format!(
                        "`{text}` is not an elementary stream PID (16 to 8190, or 0x10 to 0x1ffe)"
                    ),
                )
            })?;
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    if pids.is_empty() || pids.len() > MAX_SELECTED_PIDS {
        return Err(Diagnostic::error(
            span,
            format!("`pids` lists 1 to {MAX_SELECTED_PIDS} PIDs"),
        ));
    }
    Ok(pids)
}

/// Longest URL accepted in a config: far above any real source URL, low enough that a
/// pasted blob is caught.
pub const MAX_URL_BYTES: usize = 4096;

fn check_url(url: &str, arg: &Arg) -> Result<()> {
    let scheme_ok = url.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
    });
    if scheme_ok && url.len() <= MAX_URL_BYTES {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        if scheme == "srt" {
            return crate::srt::caller::SrtUrl::parse(url)
                .map(|_| ())
                .map_err(|why| Diagnostic::error(arg.span, why));
        }
        if crate::media::input::ACTIVE_SCHEMES.contains(&scheme) {
            return Ok(());
        }
        let supported: Vec<String> = crate::media::input::ACTIVE_SCHEMES
            .iter()
            .map(|s| format!("{s}://"))
            .collect();
        Err(Diagnostic::error(
            arg.span,
            format!("inputs of scheme `{scheme}://` are not supported yet"),
        )
        .expected(format!("one of {}", supported.join(", "))))
    } else {
        Err(Diagnostic::error(arg.span, format!("`{url}` is not a URL"))
            .expected("SCHEME://… such as tshttp://host/path, udp://239.0.0.1:1234, file:///a.ts, publish://"))
    }
}

/// Reads one stream-level option into `options`; shared by stream, template and source.
fn read_stream_option(
    reader: &mut Reader,
    name: &'static str,
    s: &Statement,
    o: &mut StreamOptions,
) -> Result<()> {
    match name {
        "input" => {
            o.inputs.push(read_input(s)?);
            Ok(())
        }
        "static" => set_once(&mut o.static_, flag(s)?, s),
        "disabled" => set_once(&mut o.disabled, flag(s)?, s),
        "clients_timeout" => set_once(&mut o.clients_timeout, single::<Timeout>(s)?, s),
        "cluster_play" => set_once(&mut o.cluster_play, single(s)?, s),
        "retry_limit" => set_once(&mut o.retry_limit, single(s)?, s),
        "source_timeout" => set_once(&mut o.source_timeout, single::<Timeout>(s)?, s),
        "segment_duration" => {
            let duration: Seconds = single(s)?;
            if !(1_000..=60_000).contains(&duration.millis) {
                return Err(Diagnostic::error(
                    s.span,
                    "segment_duration must be from 1 to 60 seconds",
                ));
            }
            set_once(&mut o.segment_duration, duration, s)
        }
        "segment_count" => {
            let count: u32 = single(s)?;
            if !(1..=MAX_SEGMENT_COUNT).contains(&count) {
                return Err(Diagnostic::error(
                    s.span,
                    format!("segment_count must be from 1 to {MAX_SEGMENT_COUNT}"),
                ));
            }
            set_once(&mut o.segment_count, count, s)
        }
        "chunk_duration" => {
            let part_ms: u32 = single(s)?;
            if !PART_DURATION_RANGE_MS.contains(&part_ms) {
                return Err(Diagnostic::error(
                    s.span,
                    format!(
                        "chunk_duration must be from {} to {} milliseconds",
                        PART_DURATION_RANGE_MS.start(),
                        PART_DURATION_RANGE_MS.end()
                    ),
                ));
            }
            set_once(&mut o.chunk_duration, part_ms, s)
        }
        "max_sessions" => set_once(&mut o.max_sessions, single(s)?, s),
        "url_prefix" => set_once(&mut o.url_prefix, single(s)?, s),
        "protocols" => {
            let args = positionals(
                s,
                1,
                PROTOCOL_NAMES.len(),
                "protocol names, `-name` to deny",
            )?;
            if !o.protocols.is_empty() {
                return Err(Diagnostic::error(s.name_span, "`protocols` is given twice"));
            }
            for (text, span) in args {
                let (allow, protocol) = match text.strip_prefix('-') {
                    Some(rest) => (false, rest),
                    None => (true, text.as_str()),
                };
                let protocol =
                    choose(protocol, span, &PROTOCOL_NAMES, &PROTOCOL_NAMES, "protocol")?;
                o.protocols.push(ProtocolRule {
                    protocol: protocol.to_string(),
                    allow,
                });
            }
            Ok(())
        }
        "prepush" => set_once(&mut o.prepush, single(s)?, s),
        "dvr" => set_once(&mut o.dvr, raw_args(s)?, s),
        "on_play" => set_once(&mut o.on_play, single(s)?, s),
        "on_publish" => set_once(&mut o.on_publish, single(s)?, s),
        "auth" => set_once(&mut o.auth, single(s)?, s),
        "password" => set_once(&mut o.password, single(s)?, s),
        "srt_passphrase" => {
            let passphrase: Secret = single(s)?;
            if !crate::srt::PASSPHRASE_BYTES.contains(&passphrase.0.len()) {
                return Err(Diagnostic::error(
                    s.span,
                    "an SRT passphrase is 10 to 79 bytes (libsrt refuses others)",
                ));
            }
            set_once(&mut o.srt_passphrase, passphrase, s)
        }
        "push" => {
            no_block(s)?;
            let args: Vec<(&str, &Arg)> = s.positionals().collect();
            let [(url, arg)] = args.as_slice() else {
                return Err(Diagnostic::error(s.after_name(), "`push` takes one URL")
                    .expected("push URL [key=value…];"));
            };
            check_url(url, arg)?;
            o.pushes.push(Push {
                url: url.to_string(),
                options: s
                    .options()
                    .map(|(k, v, _)| (k.to_string(), v.to_string()))
                    .collect(),
            });
            Ok(())
        }
        "transcoder" => set_once(&mut o.transcoder, raw_args(s)?, s),
        "thumbnails" => set_once(&mut o.thumbnails, raw_args(s)?, s),
        "title" => set_once(&mut o.title, single(s)?, s),
        "comment" => set_once(&mut o.comment, single(s)?, s),
        "cluster_ingest" => {
            no_block(s)?;
            if let Some((word, arg)) = s.positionals().next() {
                return Err(Diagnostic::error(arg.span, format!("unexpected `{word}`"))
                    .expected("`cluster_ingest;` or `cluster_ingest capture_at=HOST;`"));
            }
            let mut ingest = ClusterIngest::default();
            for (_, value, span) in checked_options(s, &["capture_at"])? {
                let node = parse_host_port(value, span)?;
                reader.capture_refs.push((node.clone(), span));
                ingest.capture_at = Some(node);
            }
            set_once(&mut o.cluster_ingest, ingest, s)
        }
        other => unreachable!("stream option `{other}` is in the registry but not read"),
    }
}

/// Most segments a live window may advertise; each is held in memory per stream.
pub const MAX_SEGMENT_COUNT: u32 = 100;

/// LL-HLS part durations (`chunk_duration`): below 100 ms a part is a frame or two and
/// the per-part overhead (a request, a `moof`) outweighs it; above 10 s it is no longer
/// low latency.
pub const PART_DURATION_RANGE_MS: std::ops::RangeInclusive<u32> = 100..=10_000;

fn read_stream(reader: &mut Reader, statement: &Statement, ondemand: bool) -> Result<Stream> {
    no_options(statement)?;
    let (name, name_span) = required_name(statement, "a stream name")?;
    check_stream_name(&name, name_span)?;
    let mut options = StreamOptions::default();
    let urls: Vec<(&str, &Arg)> = statement.positionals().skip(1).collect();
    match (&statement.block, urls.as_slice()) {
        // Legacy one-line form: `stream NAME URL;`.
        (None, [(url, arg)]) => {
            check_url(url, arg)?;
            options.inputs.push(Input {
                url: url.to_string(),
                ..Input::default()
            });
        }
        (None, []) => {
            return Err(
                Diagnostic::error(statement.span, format!("stream `{name}` has no body")).expected(
                    format!(
                        "`{} {name} {{ input URL; }}` or `{} {name} URL;`",
                        statement.name, statement.name
                    ),
                ),
            );
        }
        (_, [_, (word, arg), ..]) | (Some(_), [(word, arg), ..]) => {
            return Err(Diagnostic::error(arg.span, format!("unexpected `{word}`"))
                .expected("one URL in the one-line form, or a block"));
        }
        (Some(block), []) => {
            reader.read_block(Context::Stream, block, &mut options, read_stream_option);
        }
    }
    Ok(Stream {
        name,
        ondemand,
        options,
    })
}

fn read_template(reader: &mut Reader, statement: &Statement) -> Result<Template> {
    let (name, name_span) = required_name(statement, "a template name")?;
    positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "a template name",
    )?;
    let block = required_block(statement)?;
    let legacy_live = statement.name == "live";
    if legacy_live {
        check_stream_name(&name, name_span)?;
    }
    let mut template = Template {
        // `live PREFIX { … }` is a template for that prefix, named after it.
        prefixes: if legacy_live {
            vec![name.clone()]
        } else {
            Vec::new()
        },
        name,
        options: StreamOptions::default(),
    };
    // The template's prefixes as a set too: a `prefixes` line may list thousands.
    let mut prefixes: HashSet<String> = template.prefixes.iter().cloned().collect();
    reader.read_block(
        Context::Template,
        block,
        &mut template,
        |r, n, s, t| match n {
            "prefix" | "prefixes" => {
                let max = if n == "prefix" { 1 } else { usize::MAX };
                for (text, span) in positionals(s, 1, max, "a name prefix")? {
                    if !text.is_empty() {
                        check_stream_name(&text, span)?;
                    }
                    if !prefixes.insert(text.clone()) {
                        return Err(Diagnostic::error(
                            span,
                            format!("prefix `{text}` is given twice"),
                        ));
                    }
                    t.prefixes.push(text);
                }
                Ok(())
            }
            _ => read_stream_option(r, n, s, &mut t.options),
        },
    );
    Ok(template)
}

fn read_source(reader: &mut Reader, statement: &Statement) -> Result<Source> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "HOST[:PORT][/PREFIX]",
    )?;
    let (text, span) = &args[0];
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.to_string())),
        None => (text.as_str(), None),
    };
    let mut source = Source {
        address: parse_host_port(address, *span)?,
        prefix,
        only: None,
        except: Vec::new(),
        cluster_key: None,
        options: StreamOptions::default(),
    };
    if let Some(block) = &statement.block {
        reader.read_block(
            Context::Source,
            block,
            &mut source,
            |r, n, s, src| match n {
                "only" => {
                    let names = positionals(s, 0, usize::MAX, "names or prefix/*")?;
                    set_once(
                        &mut src.only,
                        names.into_iter().map(|(t, _)| t).collect(),
                        s,
                    )
                }
                "except" => {
                    let names = positionals(s, 1, usize::MAX, "names or prefix/*")?;
                    src.except.extend(names.into_iter().map(|(t, _)| t));
                    Ok(())
                }
                "cluster_key" => set_once(&mut src.cluster_key, single(s)?, s),
                "prefix" => set_once(&mut src.prefix, single(s)?, s),
                _ => read_stream_option(r, n, s, &mut src.options),
            },
        );
    }
    Ok(source)
}

// ------------------------------------------------------------------------------------------
// Cluster objects.

fn read_peer(reader: &mut Reader, statement: &Statement) -> Result<Peer> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "HOST[:PORT]",
    )?;
    let mut peer = Peer {
        address: parse_host_port(&args[0].0, args[0].1)?,
        ..Peer::default()
    };
    if let Some(block) = &statement.block {
        reader.read_block(Context::Peer, block, &mut peer, |_, n, s, p| match n {
            "api_url" => set_once(&mut p.api_url, single(s)?, s),
            "public_payload_url" => set_once(&mut p.public_payload_url, single(s)?, s),
            "private_payload_url" => set_once(&mut p.private_payload_url, single(s)?, s),
            "fetch_timeout" => set_once(&mut p.fetch_timeout, single::<Millis>(s)?, s),
            "stale_timeout" => set_once(&mut p.stale_timeout, single::<Millis>(s)?, s),
            "channel_limit" => set_once(&mut p.channel_limit, single(s)?, s),
            "cpu_limit" => set_once(&mut p.cpu_limit, single(s)?, s),
            "cluster_key" => set_once(&mut p.cluster_key, single(s)?, s),
            "max_bitrate" => set_once(&mut p.max_bitrate, single::<Bitrate>(s)?, s),
            other => unreachable!("peer block: {other}"),
        });
    }
    if let (Some(fetch), Some(stale)) = (peer.fetch_timeout, peer.stale_timeout)
        && stale.millis <= fetch.millis
    {
        return Err(Diagnostic::error(
                statement.span,
                format!(
                    "peer `{}`: stale_timeout ({} ms) must be longer than fetch_timeout ({} ms)",
                    peer.address, stale.millis, fetch.millis
                ),
            )
            .help("a peer is dead only after several missed exchanges; try stale_timeout = 3 × fetch_timeout"));
    }
    Ok(peer)
}

fn read_balancer(reader: &mut Reader, statement: &Statement) -> Result<Balancer> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "a balancer name",
    )?;
    check_stream_name(&args[0].0, args[0].1)?;
    let block = required_block(statement)?;
    let mut balancer = Balancer {
        name: args[0].0.clone(),
        mode: None,
        servers: Vec::new(),
    };
    // The servers' addresses as a set too: a balancer may list thousands of servers.
    let mut addresses = HashSet::new();
    reader.read_block(
        Context::Balancer,
        block,
        &mut balancer,
        |_, n, s, b| match n {
            "mode" => {
                let (text, span) =
                    positionals(s, 1, 1, "clients, bitrate, usage or streams")?.remove(0);
                let mode = choose(
                    &text,
                    span,
                    &BalancerMode::NAMES,
                    &[
                        BalancerMode::Clients,
                        BalancerMode::Bitrate,
                        BalancerMode::Usage,
                        BalancerMode::Streams,
                    ],
                    "balancer mode",
                )?;
                set_once(&mut b.mode, mode, s)
            }
            "server" => {
                let server = read_balancer_server(s)?;
                if !addresses.insert(server.address.clone()) {
                    return Err(Diagnostic::error(
                        s.span,
                        format!("server `{}` is listed twice", server.address),
                    ));
                }
                b.servers.push(server);
                Ok(())
            }
            other => unreachable!("balancer block: {other}"),
        },
    );
    Ok(balancer)
}

fn read_balancer_server(s: &Statement) -> Result<BalancerServer> {
    no_block(s)?;
    let words: Vec<(&str, &Arg)> = s.positionals().collect();
    let [(host, arg)] = words.as_slice() else {
        return Err(
            Diagnostic::error(s.after_name(), "a balancer server needs exactly one host").expected(
                "server HOST[:PORT] [max_bitrate=B] [countries=CC,CC] [countries_default=true];",
            ),
        );
    };
    let mut server = BalancerServer {
        address: parse_host_port(host, arg.span)?,
        max_bitrate: None,
        countries: Vec::new(),
        countries_default: false,
    };
    for (key, value, span) in
        checked_options(s, &["max_bitrate", "countries", "countries_default"])?
    {
        match key {
            "max_bitrate" => server.max_bitrate = Some(parse_at(value, span)?),
            "countries_default" => server.countries_default = parse_at(value, span)?,
            _ => {
                for code in parse_list::<String>(value).unwrap_or_default() {
                    if code.len() != 2 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
                        return Err(Diagnostic::error(
                            span,
                            format!("`{code}` is not a country code"),
                        )
                        .expected("ISO 3166-1 alpha-2 codes such as RU,CN,DE"));
                    }
                    server.countries.push(code.to_ascii_uppercase());
                }
            }
        }
    }
    Ok(server)
}

// ------------------------------------------------------------------------------------------
// Files, caches, events, auth, DVR.

fn read_vod(reader: &mut Reader, statement: &Statement) -> Result<Vod> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "a location name",
    )?;
    check_stream_name(&args[0].0, args[0].1)?;
    let block = required_block(statement)?;
    let mut vod = Vod {
        name: args[0].0.clone(),
        ..Vod::default()
    };
    reader.read_block(Context::Vod, block, &mut vod, |_, n, s, v| match n {
        "path" | "paths" => {
            let max = if n == "path" { 1 } else { usize::MAX };
            v.paths.extend(
                positionals(s, 1, max, "a directory or URL")?
                    .into_iter()
                    .map(|(t, _)| t),
            );
            Ok(())
        }
        "download" => set_once(&mut v.download, flag(s)?, s),
        "cache" => {
            let cache = read_file_cache(s)?;
            set_once(&mut v.cache, cache, s)
        }
        "segment_cache" => {
            let cache = read_cache_args(s, 1)?;
            set_once(&mut v.segment_cache, cache, s)
        }
        other => unreachable!("vod block: {other}"),
    });
    Ok(vod)
}

fn read_file_cache(s: &Statement) -> Result<FileCache> {
    let SegmentCache {
        path,
        storage_limit,
        expiration,
        misses,
    } = read_cache_args(s, 1)?;
    if expiration.is_some() {
        return Err(
            Diagnostic::error(s.span, "a file cache takes a size, not an age")
                .expected("cache PATH [SIZE] [misses=N];"),
        );
    }
    Ok(FileCache {
        path,
        storage_limit,
        misses,
    })
}

/// `[NAME] PATH` then, in any order, a size (`40G`), an age (`2d`) and `misses=N`.
/// Sizes and ages are told apart by their unit, as Flussonic's examples mix them freely.
/// The result has the shape of a [`SegmentCache`], the richest of the three cache forms.
fn read_cache_args(s: &Statement, leading: usize) -> Result<SegmentCache> {
    no_block(s)?;
    let words: Vec<(&str, &Arg)> = s.positionals().collect();
    if words.len() < leading {
        return Err(
            Diagnostic::error(s.after_name(), format!("`{}` needs a path", s.name))
                .expected("PATH [SIZE] [AGE] [misses=N]"),
        );
    }
    let path = words[leading - 1].0.to_string();
    let (mut size, mut age) = (None, None);
    for (word, arg) in &words[leading..] {
        // Sizes use upper-case units (`40G`, `512M`); ages end in s, m, h or d.
        let is_age = word.ends_with(['s', 'm', 'h', 'd']);
        if is_age {
            set_once(&mut age, parse_at::<Seconds>(word, arg.span)?, s)?;
        } else {
            set_once(
                &mut size,
                parse_at::<super::values::ByteSize>(word, arg.span)?,
                s,
            )?;
        }
    }
    let mut misses = None;
    for (_, value, span) in checked_options(s, &["misses"])? {
        misses = Some(parse_at(value, span)?);
    }
    Ok(SegmentCache {
        path,
        storage_limit: size,
        expiration: age,
        misses,
    })
}

fn read_global_cache(s: &Statement) -> Result<Cache> {
    let (name, _) = required_name(s, "a cache name")?;
    if s.positionals().count() < 2 {
        return Err(
            Diagnostic::error(s.after_name(), "`cache` needs a name and a path")
                .expected("cache NAME PATH [misses=N] [AGE] [SIZE];"),
        );
    }
    let SegmentCache {
        path,
        storage_limit,
        expiration,
        misses,
    } = read_cache_args(s, 2)?;
    Ok(Cache {
        name,
        path,
        misses,
        expiration,
        storage_limit,
    })
}

fn read_event_filter(s: &Statement) -> Result<EventFilter> {
    no_block(s)?;
    if let Some((word, arg)) = s.positionals().next() {
        return Err(Diagnostic::error(arg.span, format!("unexpected `{word}`"))
            .expected("field=value1,value2 conditions such as event=stream_opened,source_*"));
    }
    let conditions: Vec<(String, Vec<String>)> = s
        .options()
        .map(|(k, v, _)| {
            (
                k.to_string(),
                v.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect(),
            )
        })
        .collect();
    if conditions.is_empty() || conditions.iter().any(|(_, values)| values.is_empty()) {
        return Err(Diagnostic::error(
            s.span,
            format!("`{}` needs at least one field=value condition", s.name),
        ));
    }
    Ok(EventFilter { conditions })
}

fn read_event_sink(reader: &mut Reader, statement: &Statement) -> Result<EventSink> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "a sink name",
    )?;
    let block = required_block(statement)?;
    let mut sink = EventSink {
        name: args[0].0.clone(),
        ..EventSink::default()
    };
    reader.read_block(Context::EventSink, block, &mut sink, |_, n, s, k| match n {
        // `url` is the new spelling; the old `notify` block wrote `sink`.
        "url" => {
            k.urls.push(single(s)?);
            Ok(())
        }
        "level" => {
            let (text, span) = positionals(s, 1, 1, "an event level")?.remove(0);
            let level = choose(
                &text,
                span,
                &EventLevel::NAMES,
                &[
                    EventLevel::Debug,
                    EventLevel::Info,
                    EventLevel::Notice,
                    EventLevel::Warning,
                    EventLevel::Error,
                    EventLevel::Critical,
                    EventLevel::Alert,
                ],
                "event level",
            )?;
            set_once(&mut k.level, level, s)
        }
        "only" => {
            k.only.push(read_event_filter(s)?);
            Ok(())
        }
        "except" => {
            k.except.push(read_event_filter(s)?);
            Ok(())
        }
        "throttle_delay" => set_once(&mut k.throttle_delay, single(s)?, s),
        "resend_limit" => set_once(&mut k.resend_limit, single(s)?, s),
        "resend_timeout" => set_once(&mut k.resend_timeout, single(s)?, s),
        "max_size" => set_once(&mut k.max_size, single(s)?, s),
        "max_depth" => set_once(&mut k.max_depth, single(s)?, s),
        "extra" => {
            no_block(s)?;
            if let Some((word, arg)) = s.positionals().next() {
                return Err(Diagnostic::error(arg.span, format!("unexpected `{word}`"))
                    .expected("key=value pairs"));
            }
            k.extra.extend(
                s.options()
                    .map(|(key, v, _)| (key.to_string(), v.to_string())),
            );
            Ok(())
        }
        other => unreachable!("event_sink block: {other}"),
    });
    Ok(sink)
}

fn read_auth_backend(reader: &mut Reader, statement: &Statement) -> Result<AuthBackend> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "a backend name",
    )?;
    let block = required_block(statement)?;
    let mut backend = AuthBackend {
        name: args[0].0.clone(),
        ..AuthBackend::default()
    };
    reader.read_block(
        Context::AuthBackend,
        block,
        &mut backend,
        |_, n, s, b| match n {
            "allow" | "deny" => {
                let words =
                    positionals(s, 1, usize::MAX, "token|ip|country|ua VALUES…, or default")?;
                let allow = n == "allow";
                if words[0].0 == "default" {
                    if words.len() > 1 {
                        return Err(Diagnostic::error(words[1].1, "`default` takes no values"));
                    }
                    return set_once(&mut b.default_allow, allow, s);
                }
                let subject = choose(
                    &words[0].0,
                    words[0].1,
                    &AuthSubject::NAMES,
                    &[
                        AuthSubject::Token,
                        AuthSubject::Ip,
                        AuthSubject::Country,
                        AuthSubject::Ua,
                    ],
                    "rule subject",
                )?;
                if words.len() < 2 {
                    return Err(Diagnostic::error(
                        s.span,
                        format!("`{n} {}` needs values", words[0].0),
                    ));
                }
                let values: Vec<String> = words[1..].iter().map(|(t, _)| t.clone()).collect();
                if subject == AuthSubject::Ip {
                    for (text, span) in &words[1..] {
                        parse_at::<Cidr>(text, *span)?;
                    }
                }
                b.rules.push(AuthRule {
                    allow,
                    subject,
                    values,
                });
                Ok(())
            }
            "backend" => {
                b.backends.push(single(s)?);
                Ok(())
            }
            other => unreachable!("auth_backend block: {other}"),
        },
    );
    Ok(backend)
}

fn read_dvr(reader: &mut Reader, statement: &Statement) -> Result<Dvr> {
    let args = positionals(
        &Statement {
            block: None,
            ..statement.clone()
        },
        1,
        1,
        "a DVR name",
    )?;
    let block = required_block(statement)?;
    let mut dvr = Dvr {
        name: args[0].0.clone(),
        ..Dvr::default()
    };
    reader.read_block(Context::Dvr, block, &mut dvr, |_, n, s, d| match n {
        "root" => set_once(&mut d.root, single(s)?, s),
        "disk_limit" => set_once(&mut d.disk_limit, single(s)?, s),
        "storage_limit" => set_once(&mut d.storage_limit, single(s)?, s),
        "expiration" => set_once(&mut d.expiration, single(s)?, s),
        "copies" => set_once(&mut d.copies, single(s)?, s),
        other => unreachable!("dvr block: {other}"),
    });
    Ok(dvr)
}
