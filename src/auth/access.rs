//! What each stream asks of its viewers and publishers, resolved from the config once:
//! the play and publish policies (`on_play`, `on_publish`, `auth`), the publish
//! `password`, the allowed play `protocols` and the stream's `max_sessions`.
//!
//! A stream's own block decides; a stream started from a template (published names under
//! its prefix) takes the template's. Everything else is open.

use std::collections::HashMap;
use std::sync::Arc;

use super::authorizer::{Authorizer, PolicyError};
use crate::config::model::{Config, ProtocolRule, StreamOptions};
use crate::sessions::Protocol;

/// Which play protocols a stream allows (`protocols hls -rtmp …;`).
///
/// Flussonic's reading: names without `-` list the only protocols allowed; names with `-`
/// deny those (then everything else is allowed). Both together: the listed ones minus the
/// denied ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protocols {
    allowed: Option<Vec<&'static str>>,
    denied: Vec<&'static str>,
}

impl Protocols {
    pub fn from_rules(rules: &[ProtocolRule]) -> Protocols {
        let mut protocols = Protocols::default();
        for rule in rules {
            let Some(name) = canonical(&rule.protocol) else {
                continue;
            };
            match rule.allow {
                true => protocols.allowed.get_or_insert_with(Vec::new).push(name),
                false => protocols.denied.push(name),
            }
        }
        protocols
    }

    /// Whether viewers may play over `protocol`.
    pub fn allows(&self, protocol: Protocol) -> bool {
        let name = protocol_name(protocol);
        let listed = self
            .allowed
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&name));
        listed && !self.denied.contains(&name)
    }
}

/// The `protocols` name of a session protocol.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Hls => "hls",
        Protocol::Dash => "dash",
        Protocol::Mpegts => "mpegts",
        Protocol::Rtmp => "rtmp",
        Protocol::Webrtc => "webrtc",
    }
}

/// `tshttp` and `mpegts` are one protocol (HTTP MPEG-TS); other names as they are.
fn canonical(name: &str) -> Option<&'static str> {
    let name = if name == "tshttp" { "mpegts" } else { name };
    crate::config::model::PROTOCOL_NAMES
        .iter()
        .copied()
        .find(|known| *known == name)
}

/// The access rules of one stream.
#[derive(Debug, Default)]
pub struct StreamAccess {
    /// Asked once per viewer session (`on_play`, else `auth`).
    pub play: Option<Arc<Authorizer>>,
    /// Asked once per publisher (`on_publish`, else `auth`).
    pub publish: Option<Arc<Authorizer>>,
    /// The password a publisher must give (`?password=` on the RTMP URL).
    pub password: Option<String>,
    pub protocols: Protocols,
    /// Concurrent viewer sessions of this stream.
    pub max_sessions: Option<u32>,
}

impl StreamAccess {
    fn from_options(options: &StreamOptions, config: &Config) -> Result<StreamAccess, PolicyError> {
        let resolve = |value: Option<&String>| {
            value
                .map(|value| Authorizer::resolve(value, &config.auth_backends))
                .transpose()
        };
        Ok(StreamAccess {
            play: resolve(options.on_play.as_ref().or(options.auth.as_ref()))?,
            publish: resolve(options.on_publish.as_ref().or(options.auth.as_ref()))?,
            password: options.password.as_ref().map(|secret| secret.0.clone()),
            protocols: Protocols::from_rules(&options.protocols),
            max_sessions: options.max_sessions,
        })
    }
}

/// Every stream's and template's access rules.
#[derive(Debug, Default)]
pub struct AccessRules {
    streams: HashMap<String, Arc<StreamAccess>>,
    /// (prefix, rules) of templates, in config order; `""` matches every name.
    templates: Vec<(String, Arc<StreamAccess>)>,
    open: Arc<StreamAccess>,
}

impl AccessRules {
    /// Compiles the config's rules; an unusable policy reference is the operator's error
    /// (the config check reports the same before a node starts).
    pub fn from_config(config: &Config) -> Result<AccessRules, PolicyError> {
        let mut rules = AccessRules::default();
        for stream in &config.streams {
            let access = StreamAccess::from_options(&stream.options, config)?;
            rules.streams.insert(stream.name.clone(), Arc::new(access));
        }
        for template in &config.templates {
            let access = Arc::new(StreamAccess::from_options(&template.options, config)?);
            for prefix in &template.prefixes {
                rules.templates.push((prefix.clone(), access.clone()));
            }
        }
        Ok(rules)
    }

    /// The rules of stream `name`.
    pub fn of(&self, name: &str) -> Arc<StreamAccess> {
        if let Some(access) = self.streams.get(name) {
            return access.clone();
        }
        self.templates
            .iter()
            .find(|(prefix, _)| {
                prefix.is_empty()
                    || name
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map_or_else(|| self.open.clone(), |(_, access)| access.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Protocols {
        Protocols::from_rules(
            &text
                .split_whitespace()
                .map(|word| ProtocolRule {
                    protocol: word.trim_start_matches('-').into(),
                    allow: !word.starts_with('-'),
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn protocols_list_the_allowed_or_deny_the_named() {
        assert!(rules("").allows(Protocol::Rtmp));
        assert!(!rules("-rtmp -dash").allows(Protocol::Rtmp));
        assert!(rules("-rtmp -dash").allows(Protocol::Hls));
        assert!(rules("hls").allows(Protocol::Hls));
        assert!(!rules("hls").allows(Protocol::Mpegts));
        assert!(!rules("-tshttp").allows(Protocol::Mpegts));
        assert!(!rules("hls mpegts -mpegts").allows(Protocol::Mpegts));
    }

    #[test]
    fn streams_then_templates_then_open() {
        let config = crate::config::load_str(
            "t",
            "stream cam { input publish://; password s1; protocols -rtmp; }\n\
             template live { prefix live; input publish://; on_publish http://127.0.0.1:1/p; }",
        )
        .expect("loads")
        .config;
        let rules = AccessRules::from_config(&config).expect("compiles");
        assert_eq!(rules.of("cam").password.as_deref(), Some("s1"));
        assert!(!rules.of("cam").protocols.allows(Protocol::Rtmp));
        assert!(rules.of("live/a").publish.is_some());
        assert!(rules.of("lively/a").publish.is_none());
        assert!(rules.of("other").password.is_none());
    }
}
