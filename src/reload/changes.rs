//! What a reload changes: a pure comparison of the running config and plan with the
//! new ones, so that the reload touches exactly what differs and the rest keeps running.
//!
//! Streams are compared by their plan (what their actor runs): a stream whose plan is
//! equal keeps its actor, its ingest and its viewers, whatever else changed around it
//! (its play policy, for one, is read from the live config by each new session).
//! Settings the running node cannot take without a restart are named, not applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use flotilla_cluster::tree::{NodePlan, StreamPlan};

use crate::config::Config;
use crate::config::model::HttpListener;

/// Names added, removed and changed between two keyed lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Keyed {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Keyed {
    /// Compares `old` and `new` by `key`, in key order.
    pub fn between<T: PartialEq>(old: &[T], new: &[T], key: impl Fn(&T) -> String) -> Keyed {
        let old: BTreeMap<String, &T> = old.iter().map(|item| (key(item), item)).collect();
        let new: BTreeMap<String, &T> = new.iter().map(|item| (key(item), item)).collect();
        let mut keyed = Keyed::default();
        for (name, item) in &new {
            match old.get(name) {
                None => keyed.added.push(name.clone()),
                Some(before) if before != item => keyed.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        keyed.removed = old
            .keys()
            .filter(|name| !new.contains_key(*name))
            .cloned()
            .collect();
        keyed
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `2 added, 1 removed` (`unchanged` when nothing changed).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.added.len(), "added"),
            (self.removed.len(), "removed"),
            (self.changed.len(), "changed"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        match parts.is_empty() {
            true => "unchanged".into(),
            false => parts.join(", "),
        }
    }
}

/// The kinds of TCP listener a reload opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ListenerKind {
    Http,
    Https,
    Rtmp,
    Rtmps,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
            ListenerKind::Rtmp => "rtmp",
            ListenerKind::Rtmps => "rtmps",
        }
    }
}

/// A TCP listener of the config: its kind, address and (HTTP) block options.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    pub kind: ListenerKind,
    pub address: SocketAddr,
    /// The `http`/`https` block; `None` for RTMP.
    pub http: Option<HttpListener>,
}

impl ListenerSpec {
    /// Every TCP listener of `config`, in config order.
    pub fn of(config: &Config) -> Vec<ListenerSpec> {
        let http = |kind| {
            move |listener: &HttpListener| ListenerSpec {
                kind,
                address: listener.listen.socket_addr(),
                http: Some(listener.clone()),
            }
        };
        let rtmp = |kind| {
            move |listen: &crate::config::model::ListenAddr| ListenerSpec {
                kind,
                address: listen.socket_addr(),
                http: None,
            }
        };
        config
            .http
            .iter()
            .map(http(ListenerKind::Http))
            .chain(config.https.iter().map(http(ListenerKind::Https)))
            .chain(config.rtmp.iter().map(rtmp(ListenerKind::Rtmp)))
            .chain(config.rtmps.iter().map(rtmp(ListenerKind::Rtmps)))
            .collect()
    }

    /// `https 127.0.0.1:8443`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.name(), self.address)
    }
}

/// Everything a reload would do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigChanges {
    /// Configured streams by name (compared by plan).
    pub streams: Keyed,
    /// Templates by name.
    pub templates: Keyed,
    /// Balancers by name.
    pub balancers: Keyed,
    /// Peers by node key (`host:port`).
    pub peers: Keyed,
    /// Listeners to open (bound before anything else changes).
    pub listeners_added: Vec<ListenerSpec>,
    /// Listeners to close (their open connections finish).
    pub listeners_removed: Vec<ListenerSpec>,
    /// Access and play settings (credentials, tokens, auth backends, limits) that
    /// changed: applied to new sessions and requests.
    pub access: bool,
    /// Settings that changed but take effect only at the next start, by directive name.
    pub restart_only: Vec<String>,
}

impl ConfigChanges {
    /// What turning `old` (running, with `old_plan`) into `new` (with `new_plan`) does.
    pub fn between(old: &Config, old_plan: &NodePlan, new: &Config, new_plan: &NodePlan) -> Self {
        let stream_key = |stream: &StreamPlan| stream.name.clone();
        let mut changes = ConfigChanges {
            streams: Keyed::between(&old_plan.streams, &new_plan.streams, stream_key),
            templates: Keyed::between(&old.templates, &new.templates, |t| t.name.clone()),
            balancers: Keyed::between(&old.balancers, &new.balancers, |b| b.name.clone()),
            peers: Keyed::between(&old.peers, &new.peers, |p| {
                crate::config::identity::node_key(&p.address)
            }),
            access: old.auth_token != new.auth_token
                || old.auto_token != new.auto_token
                || old.max_sessions != new.max_sessions
                || old.view_auth != new.view_auth
                || old.edit_auth != new.edit_auth
                || old.api_allowed_from != new.api_allowed_from
                || old.auth_backends != new.auth_backends,
            ..ConfigChanges::default()
        };
        // A stream whose access options alone changed keeps running; say it changed.
        let options = Keyed::between(&old.streams, &new.streams, |s| s.name.clone());
        changes.access |= !options.changed.is_empty();
        let old_listeners = ListenerSpec::of(old);
        let new_listeners = ListenerSpec::of(new);
        let same_place =
            |a: &ListenerSpec, b: &ListenerSpec| a.kind == b.kind && a.address == b.address;
        for listener in &new_listeners {
            match old_listeners.iter().find(|old| same_place(old, listener)) {
                None => changes.listeners_added.push(listener.clone()),
                Some(before) if before.http != listener.http => changes
                    .restart_only
                    .push(format!("{} (its options)", listener.label())),
                Some(_) => {}
            }
        }
        changes.listeners_removed = old_listeners
            .into_iter()
            .filter(|old| !new_listeners.iter().any(|new| same_place(old, new)))
            .collect();
        // Peers join and leave live (the reloader knows whether the mesh can take them);
        // a changed entry's keys, timeouts and URLs are set up when its link starts.
        for peer in &changes.peers.changed {
            changes.restart_only.push(format!("peer {peer} (changed)"));
        }
        changes.restart_only.extend(restart_only(old, new));
        changes
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
            && self.templates.is_empty()
            && self.balancers.is_empty()
            && self.peers.is_empty()
            && self.listeners_added.is_empty()
            && self.listeners_removed.is_empty()
            && !self.access
            && self.restart_only.is_empty()
    }
}

/// The node-wide settings read once at start that differ between `old` and `new`.
fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    macro_rules! differing {
        ($($field:ident),* $(,)?) => {
            [$((stringify!($field), old.$field != new.$field)),*]
        };
    }
    let mut names: Vec<String> = differing!(
        hostname,
        rtsp,
        rtsps,
        srt,
        tls_certificate,
        tls_key,
        cluster_port,
        webrtc_ports,
        webrtc_address,
        rtmp_redirect,
        cluster_ingest_minority_restraint,
        loglevel,
        logrequests,
        total_bandwidth,
        cluster_key,
        shell_allowed_from,
        trusted_proxies,
        cors_allow_origin,
        pulsedb,
        session_log,
        url_prefix,
        geoip,
        nvidia_monitor,
        event_sinks,
        sources,
        vods,
        caches,
        dvrs,
    )
    .into_iter()
    .filter(|(_, differs)| *differs)
    .map(|(name, _)| name.to_string())
    .collect();
    // The mesh listens beside the first http listener unless `cluster_port` says.
    let mesh_address = |config: &Config| {
        config.http.first().map(|http| {
            (
                http.listen.ip,
                config.cluster_port.unwrap_or(http.listen.port),
            )
        })
    };
    if !names.iter().any(|name| name == "cluster_port") && mesh_address(old) != mesh_address(new) {
        names.push("the cluster mesh address (the first http listener)".into());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::identity::NodeIdentity;
    use crate::config::load_str;
    use crate::plan::node_plan;

    fn changes(old: &str, new: &str) -> ConfigChanges {
        let old = load_str("old", old).expect("old parses").config;
        let new = load_str("new", new).expect("new parses").config;
        let identity = NodeIdentity::resolve(&old, Some("a"), None);
        ConfigChanges::between(
            &old,
            &node_plan(&old, &identity),
            &new,
            &node_plan(&new, &identity),
        )
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let text =
            "http 8080; rtmp 1935; stream a { input test://; } stream b { input publish://; }";
        assert!(changes(text, text).is_empty());
    }

    #[test]
    fn streams_are_added_removed_and_changed_by_plan() {
        let got = changes(
            "http 8080; stream a { input test://; } stream b { input publish://; } stream c { input publish://; }",
            "http 8080; stream a { input test://; } stream b { input publish://; segment_duration 4; } stream d { input publish://; }",
        );
        assert_eq!(got.streams.added, vec!["d"]);
        assert_eq!(got.streams.removed, vec!["c"]);
        assert_eq!(got.streams.changed, vec!["b"]);
        assert!(got.restart_only.is_empty(), "{:?}", got.restart_only);
    }

    #[test]
    fn a_play_policy_change_keeps_the_stream_running() {
        let got = changes(
            "http 8080; stream a { input publish://; }",
            "http 8080; stream a { input publish://; password secret; }",
        );
        assert!(got.streams.is_empty(), "{:?}", got.streams);
        assert!(got.access);
    }

    #[test]
    fn listeners_are_opened_and_closed_by_kind_and_address() {
        let got = changes("http 8080; rtmp 1935;", "http 8080; http 8081; rtmp 1936;");
        let labels =
            |list: &[ListenerSpec]| list.iter().map(ListenerSpec::label).collect::<Vec<_>>();
        assert_eq!(
            labels(&got.listeners_added),
            ["http 0.0.0.0:8081", "rtmp 0.0.0.0:1936"]
        );
        assert_eq!(labels(&got.listeners_removed), ["rtmp 0.0.0.0:1935"]);
    }

    #[test]
    fn settings_read_at_start_are_named() {
        let got = changes(
            "http 8080; cluster_key aaaaaaaaaaaaaaaa;",
            "http 8081; cluster_key bbbbbbbbbbbbbbbb; http 8080 { api false; }",
        );
        assert!(
            got.restart_only.contains(&"cluster_key".to_string()),
            "{:?}",
            got.restart_only
        );
        assert!(
            got.restart_only
                .iter()
                .any(|name| name.contains("mesh address")),
            "{:?}",
            got.restart_only
        );
    }
}
