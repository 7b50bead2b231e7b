//! The canonical text of a configuration.
//!
//! `flotilla check-config` prints this form, and `parse(print(c)) == c` is a property test:
//! new spellings only, one directive per line, two-space indentation, directives in the
//! order of the model, quoting only where a word would otherwise be misread.

use super::model::*;
use super::syntax::is_option_key;
use super::values::{Value, render_list};

/// Renders `config` as canonical configuration text.
pub fn print(config: &Config) -> String {
    let mut p = Printer::default();
    p.global(config);
    p.out
}

#[derive(Default)]
struct Printer {
    out: String,
    depth: usize,
}

fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text.starts_with('#')
        || text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\'))
}

fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A positional word, quoted when it would be misread (including as a `key=value`).
fn word(text: &str) -> String {
    let reads_as_option = text
        .split_once('=')
        .is_some_and(|(key, _)| is_option_key(key));
    if needs_quotes(text) || reads_as_option {
        quoted(text)
    } else {
        text.to_string()
    }
}

/// `key=value`, with the value quoted when needed.
fn option(key: &str, value: &str) -> String {
    debug_assert!(
        is_option_key(key),
        "option key `{key}` would not parse back"
    );
    if needs_quotes(value) && !value.is_empty() {
        format!("{key}={}", quoted(value))
    } else {
        format!("{key}={value}")
    }
}

impl Printer {
    fn line(&mut self, name: &str, args: &[String]) {
        self.out.push_str(&"  ".repeat(self.depth));
        self.out.push_str(name);
        for arg in args {
            self.out.push(' ');
            self.out.push_str(arg);
        }
        self.out.push_str(";\n");
    }

    fn open(&mut self, name: &str, args: &[String]) {
        self.out.push_str(&"  ".repeat(self.depth));
        self.out.push_str(name);
        for arg in args {
            self.out.push(' ');
            self.out.push_str(arg);
        }
        self.out.push_str(" {\n");
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.out.push_str(&"  ".repeat(self.depth));
        self.out.push_str("}\n");
    }

    fn value<T: Value>(&mut self, name: &str, value: &Option<T>) {
        if let Some(value) = value {
            self.line(name, &[word(&value.render())]);
        }
    }

    fn global(&mut self, c: &Config) {
        if let Some(hostname) = &c.hostname {
            self.line("hostname", &[word(hostname)]);
        }
        for listener in &c.http {
            self.http_listener("http", listener);
        }
        for listener in &c.https {
            self.http_listener("https", listener);
        }
        for (name, list) in [
            ("rtmp", &c.rtmp),
            ("rtmps", &c.rtmps),
            ("rtsp", &c.rtsp),
            ("rtsps", &c.rtsps),
            ("srt", &c.srt),
        ] {
            for listen in list {
                self.line(name, &[listen.to_string()]);
            }
        }
        self.value("tls_certificate", &c.tls_certificate);
        self.value("tls_key", &c.tls_key);
        self.value("cluster_port", &c.cluster_port);
        if let Some(ports) = c.webrtc_ports {
            self.line("webrtc_ports", &[ports.to_string()]);
        }
        if let Some(address) = c.webrtc_address {
            self.line("webrtc_address", &[address.to_string()]);
        }
        self.value(
            "cluster_ingest_minority_restraint",
            &c.cluster_ingest_minority_restraint,
        );
        if let Some(level) = c.loglevel {
            self.line("loglevel", &[level.name().to_string()]);
        }
        self.value("logrequests", &c.logrequests);
        self.value("total_bandwidth", &c.total_bandwidth);
        self.value("cluster_key", &c.cluster_key);
        for (name, credentials) in [("edit_auth", &c.edit_auth), ("view_auth", &c.view_auth)] {
            if let Some(credentials) = credentials {
                self.line(
                    name,
                    &[
                        word(&credentials.user),
                        word(&credentials.password.render()),
                    ],
                );
            }
        }
        if !c.api_allowed_from.is_empty() {
            let nets: Vec<String> = c.api_allowed_from.iter().map(Value::render).collect();
            self.line("api_allowed_from", &nets);
        }
        if !c.shell_allowed_from.is_empty() {
            let nets: Vec<String> = c.shell_allowed_from.iter().map(Value::render).collect();
            self.line("shell_allowed_from", &nets);
        }
        if !c.trusted_proxies.is_empty() {
            let nets: Vec<String> = c.trusted_proxies.iter().map(Value::render).collect();
            self.line("trusted_proxies", &nets);
        }
        if !c.cors_allow_origin.is_empty() {
            let origins: Vec<String> = c.cors_allow_origin.iter().map(|o| word(o)).collect();
            self.line("cors_allow_origin", &origins);
        }
        self.value("auth_token", &c.auth_token);
        match c.auto_token {
            None => {}
            Some(AutoToken::Uuid) => self.line("auto_token", &["uuid".into()]),
            Some(AutoToken::Blank) => self.line("auto_token", &["blank".into()]),
            Some(AutoToken::Disabled) => self.line("no_auto_token", &[]),
        }
        self.value("max_sessions", &c.max_sessions);
        self.value("pulsedb", &c.pulsedb);
        self.value("session_log", &c.session_log);
        self.value("url_prefix", &c.url_prefix);
        self.value("geoip", &c.geoip);
        self.value("nvidia_monitor", &c.nvidia_monitor);
        self.value("rtmp_redirect", &c.rtmp_redirect);
        self.value("cluster_play", &c.cluster_play);
        for backend in &c.auth_backends {
            self.auth_backend(backend);
        }
        for sink in &c.event_sinks {
            self.event_sink(sink);
        }
        for cache in &c.caches {
            self.global_cache(cache);
        }
        for dvr in &c.dvrs {
            self.dvr(dvr);
        }
        for peer in &c.peers {
            self.peer(peer);
        }
        for source in &c.sources {
            self.source(source);
        }
        for balancer in &c.balancers {
            self.balancer(balancer);
        }
        for template in &c.templates {
            self.open("template", &[word(&template.name)]);
            if !template.prefixes.is_empty() {
                let prefixes: Vec<String> = template.prefixes.iter().map(|p| word(p)).collect();
                match prefixes.len() {
                    1 => self.line("prefix", &prefixes),
                    _ => self.line("prefixes", &prefixes),
                }
            }
            self.stream_options(&template.options);
            self.close();
        }
        for stream in &c.streams {
            let keyword = if stream.ondemand {
                "ondemand"
            } else {
                "stream"
            };
            self.open(keyword, &[word(&stream.name)]);
            self.stream_options(&stream.options);
            self.close();
        }
        for vod in &c.vods {
            self.vod(vod);
        }
    }

    fn http_listener(&mut self, name: &str, listener: &HttpListener) {
        let args = [listener.listen.to_string()];
        if listener.api.is_none()
            && listener.redirect_https.is_none()
            && listener.read_timeout.is_none()
            && listener.write_timeout.is_none()
        {
            self.line(name, &args);
            return;
        }
        self.open(name, &args);
        self.value("api", &listener.api);
        self.value("redirect_https", &listener.redirect_https);
        self.value("read_timeout", &listener.read_timeout);
        self.value("write_timeout", &listener.write_timeout);
        self.close();
    }

    fn stream_options(&mut self, o: &StreamOptions) {
        for input in &o.inputs {
            self.input(input);
        }
        self.value("static", &o.static_);
        self.value("disabled", &o.disabled);
        self.value("clients_timeout", &o.clients_timeout);
        self.value("cluster_play", &o.cluster_play);
        self.value("retry_limit", &o.retry_limit);
        self.value("source_timeout", &o.source_timeout);
        self.value("segment_duration", &o.segment_duration);
        self.value("segment_count", &o.segment_count);
        self.value("chunk_duration", &o.chunk_duration);
        self.value("url_prefix", &o.url_prefix);
        if !o.protocols.is_empty() {
            let rules: Vec<String> = o
                .protocols
                .iter()
                .map(|r| format!("{}{}", if r.allow { "" } else { "-" }, r.protocol))
                .collect();
            self.line("protocols", &rules);
        }
        self.value("max_sessions", &o.max_sessions);
        self.value("prepush", &o.prepush);
        self.raw("dvr", &o.dvr);
        self.value("on_play", &o.on_play);
        self.value("on_publish", &o.on_publish);
        self.value("auth", &o.auth);
        self.value("password", &o.password);
        self.value("srt_passphrase", &o.srt_passphrase);
        for push in &o.pushes {
            let mut args = vec![word(&push.url)];
            args.extend(push.options.iter().map(|(k, v)| option(k, v)));
            self.line("push", &args);
        }
        self.raw("transcoder", &o.transcoder);
        self.raw("thumbnails", &o.thumbnails);
        self.value("title", &o.title);
        self.value("comment", &o.comment);
        if let Some(ingest) = &o.cluster_ingest {
            let args: Vec<String> = ingest
                .capture_at
                .iter()
                .map(|host| option("capture_at", &host.to_string()))
                .collect();
            self.line("cluster_ingest", &args);
        }
    }

    fn raw(&mut self, name: &str, raw: &Option<RawArgs>) {
        if let Some(raw) = raw {
            let mut args: Vec<String> = raw.words.iter().map(|w| word(w)).collect();
            args.extend(raw.options.iter().map(|(k, v)| option(k, v)));
            self.line(name, &args);
        }
    }

    fn input(&mut self, input: &Input) {
        let mut args = vec![word(&input.url)];
        let mut push = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(option(key, &value));
            }
        };
        push("priority", input.priority.map(|v| v.render()));
        push("source_timeout", input.source_timeout.map(|v| v.render()));
        push("frames_timeout", input.frames_timeout.map(|v| v.render()));
        push("timeout", input.timeout.map(|v| v.render()));
        push("cluster_key", input.cluster_key.as_ref().map(Value::render));
        push("max_bitrate", input.max_bitrate.map(|v| v.render()));
        push("remote_dvr", input.remote_dvr.map(|v| v.name().to_string()));
        push("user_agent", input.user_agent.clone());
        push("headers", input.headers.clone());
        push("bind_ip", input.bind_ip.map(|ip| ip.to_string()));
        push("via", input.via.clone());
        push("transport", input.transport.map(|t| t.name().to_string()));
        push("program", input.program.map(|n| n.to_string()));
        push(
            "pids",
            (!input.pids.is_empty()).then(|| {
                let pids: Vec<String> = input.pids.iter().map(u16::to_string).collect();
                pids.join(",")
            }),
        );
        self.line("input", &args);
    }

    fn peer(&mut self, peer: &Peer) {
        let address = word(&peer.address.to_string());
        let empty = Peer {
            address: peer.address.clone(),
            ..Peer::default()
        };
        if *peer == empty {
            self.line("peer", &[address]);
            return;
        }
        self.open("peer", &[address]);
        self.value("api_url", &peer.api_url);
        self.value("public_payload_url", &peer.public_payload_url);
        self.value("private_payload_url", &peer.private_payload_url);
        self.value("fetch_timeout", &peer.fetch_timeout);
        self.value("stale_timeout", &peer.stale_timeout);
        self.value("channel_limit", &peer.channel_limit);
        self.value("cpu_limit", &peer.cpu_limit);
        self.value("cluster_key", &peer.cluster_key);
        self.value("max_bitrate", &peer.max_bitrate);
        self.close();
    }

    fn source(&mut self, source: &Source) {
        self.open("source", &[word(&source.address.to_string())]);
        self.value("prefix", &source.prefix);
        if let Some(only) = &source.only {
            let names: Vec<String> = only.iter().map(|n| word(n)).collect();
            self.line("only", &names);
        }
        if !source.except.is_empty() {
            let names: Vec<String> = source.except.iter().map(|n| word(n)).collect();
            self.line("except", &names);
        }
        self.value("cluster_key", &source.cluster_key);
        self.stream_options(&source.options);
        self.close();
    }

    fn balancer(&mut self, balancer: &Balancer) {
        self.open("balancer", &[word(&balancer.name)]);
        if let Some(mode) = balancer.mode {
            self.line("mode", &[mode.name().to_string()]);
        }
        for server in &balancer.servers {
            let mut args = vec![word(&server.address.to_string())];
            if let Some(max_bitrate) = server.max_bitrate {
                args.push(option("max_bitrate", &max_bitrate.render()));
            }
            if !server.countries.is_empty() {
                args.push(option("countries", &render_list(&server.countries)));
            }
            if server.countries_default {
                args.push(option("countries_default", "true"));
            }
            self.line("server", &args);
        }
        self.close();
    }

    fn vod(&mut self, vod: &Vod) {
        self.open("vod", &[word(&vod.name)]);
        let paths: Vec<String> = vod.paths.iter().map(|p| word(p)).collect();
        match paths.len() {
            0 => {}
            1 => self.line("path", &paths),
            _ => self.line("paths", &paths),
        }
        if let Some(cache) = &vod.cache {
            let mut args = vec![word(&cache.path)];
            args.extend(cache.storage_limit.map(|s| s.render()));
            args.extend(cache.misses.map(|m| option("misses", &m.to_string())));
            self.line("cache", &args);
        }
        self.value("download", &vod.download);
        if let Some(cache) = &vod.segment_cache {
            let mut args = vec![word(&cache.path)];
            args.extend(cache.storage_limit.map(|s| s.render()));
            args.extend(cache.expiration.map(|e| e.render()));
            args.extend(cache.misses.map(|m| option("misses", &m.to_string())));
            self.line("segment_cache", &args);
        }
        self.close();
    }

    fn global_cache(&mut self, cache: &Cache) {
        let mut args = vec![word(&cache.name), word(&cache.path)];
        args.extend(cache.misses.map(|m| option("misses", &m.to_string())));
        args.extend(cache.expiration.map(|e| e.render()));
        args.extend(cache.storage_limit.map(|s| s.render()));
        self.line("cache", &args);
    }

    fn event_sink(&mut self, sink: &EventSink) {
        self.open("event_sink", &[word(&sink.name)]);
        for url in &sink.urls {
            self.line("url", &[word(url)]);
        }
        if let Some(level) = sink.level {
            self.line("level", &[level.name().to_string()]);
        }
        for (name, filters) in [("only", &sink.only), ("except", &sink.except)] {
            for filter in filters {
                let args: Vec<String> = filter
                    .conditions
                    .iter()
                    .map(|(field, values)| option(field, &values.join(",")))
                    .collect();
                self.line(name, &args);
            }
        }
        self.value("throttle_delay", &sink.throttle_delay);
        self.value("resend_limit", &sink.resend_limit);
        self.value("resend_timeout", &sink.resend_timeout);
        self.value("max_size", &sink.max_size);
        self.value("max_depth", &sink.max_depth);
        if !sink.extra.is_empty() {
            let args: Vec<String> = sink.extra.iter().map(|(k, v)| option(k, v)).collect();
            self.line("extra", &args);
        }
        self.close();
    }

    fn auth_backend(&mut self, backend: &AuthBackend) {
        self.open("auth_backend", &[word(&backend.name)]);
        for rule in &backend.rules {
            let mut args = vec![rule.subject.name().to_string()];
            args.extend(rule.values.iter().map(|v| word(v)));
            self.line(if rule.allow { "allow" } else { "deny" }, &args);
        }
        for url in &backend.backends {
            self.line("backend", &[word(url)]);
        }
        match backend.default_allow {
            Some(true) => self.line("allow", &["default".into()]),
            Some(false) => self.line("deny", &["default".into()]),
            None => {}
        }
        self.close();
    }

    fn dvr(&mut self, dvr: &Dvr) {
        self.open("dvr", &[word(&dvr.name)]);
        self.value("root", &dvr.root);
        self.value("disk_limit", &dvr.disk_limit);
        self.value("storage_limit", &dvr.storage_limit);
        self.value("expiration", &dvr.expiration);
        self.value("copies", &dvr.copies);
        self.close();
    }
}
