//! The node's door: who may play and publish which stream, decided on the request path.
//!
//! Play: a session is authorized once, by its first request (concurrent first requests of
//! one HLS session wait for the same answer; the session's lock is the only thing they
//! share), and again only when a backend limited its answer with `X-AuthDuration` and an
//! HLS request comes after that (`update_session`). Connections (HTTP-MPEG-TS, RTMP) are
//! authorized when they open. A refused session — its token, or for HLS without a token
//! its client — is remembered for [`REFUSED_SESSION_MEMORY_MS`]: its requests are refused
//! at once, without a session and without asking the backend again, so a refused token
//! cannot be played by retrying and a refused player's retries cost the backend nothing.
//!
//! Nothing here waits on an actor: the backend call is the request's own, bounded by
//! [`super::backend::AUTH_BACKEND_TIMEOUT`], and a stream without a policy costs one map
//! lookup.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subtle::ConstantTimeEq;

use super::access::{AccessRules, StreamAccess, protocol_name};
use super::authorizer::{Authorizer, Verdict};
use super::backend::{BackendClient, BackendRequest};
use super::rules::Subject;
use crate::geoip::GeoIp;
use crate::live::Live;

/// How long a refused session (stream and token or client) is refused without asking again.
pub const REFUSED_SESSION_MEMORY_MS: u64 = 60_000;
/// Refused sessions remembered at once; past it the oldest memory is dropped first (the
/// backend is then asked again for that session: bounded memory never allows by itself).
pub const MAX_REFUSED_SESSIONS: usize = 65_536;
/// What a refused client is told: no backend URL, no rule, nothing to probe with.
pub const DENIED: &str = "access denied";

/// A session's authorization so far.
#[derive(Debug, Default)]
pub struct Authorization {
    verdict: Option<Verdict>,
    /// Wall-clock ms after which an allow must be asked again.
    expires_ms: Option<u64>,
    /// Backend questions asked for the session (the contract's `request_number`).
    asked: u32,
}

/// The request a play authorization is about.
#[derive(Debug, Clone, Copy)]
pub struct PlayRequest<'a> {
    pub stream: &'a str,
    pub protocol: crate::sessions::Protocol,
    pub session_id: &'a str,
    pub ip: Option<IpAddr>,
    pub token: Option<&'a str>,
    pub user_agent: &'a str,
    pub referer: Option<&'a str>,
    pub query: Option<&'a str>,
    pub stream_clients: usize,
    pub total_clients: usize,
}

/// Why a play was not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayDenied {
    /// Refused (the reason is for the log).
    Denied { reason: String },
    /// Sent elsewhere by the backend.
    Redirect(String),
}

/// Why a publisher was refused. The display is what the publisher is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishDenied {
    #[error("a password is required (?password=… on the stream key)")]
    PasswordRequired,
    #[error("wrong password")]
    WrongPassword,
    /// A policy refused (the reason is logged, the publisher told "access denied").
    #[error("{DENIED}")]
    Denied { reason: String },
}

impl PublishDenied {
    /// What the node's log says.
    pub fn log_reason(&self) -> String {
        match self {
            PublishDenied::Denied { reason } => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// Refused (stream, session key) pairs and until when.
#[derive(Debug, Default)]
struct RefusedSessions {
    until_ms: HashMap<(String, String), u64>,
}

impl RefusedSessions {
    fn refused(&self, stream: &str, key: &str, now_ms: u64) -> bool {
        // One allocation-free probe would need a borrowed key type; the lookup only
        // happens for new sessions of streams with a play policy.
        self.until_ms
            .get(&(stream.to_string(), key.to_string()))
            .is_some_and(|&until| until > now_ms)
    }

    fn remember(&mut self, stream: &str, token: &str, until_ms: u64, now_ms: u64) {
        if self.until_ms.len() >= MAX_REFUSED_SESSIONS {
            self.until_ms.retain(|_, until| *until > now_ms);
        }
        if self.until_ms.len() >= MAX_REFUSED_SESSIONS
            && let Some(oldest) = self
                .until_ms
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(key, _)| key.clone())
        {
            self.until_ms.remove(&oldest);
        }
        self.until_ms
            .insert((stream.to_string(), token.to_string()), until_ms);
    }
}

/// The node's access rules with what enforcing them needs.
#[derive(Debug)]
pub struct Gate {
    /// Replaced by a reload; refused sessions are remembered across it.
    rules: Live<AccessRules>,
    client: BackendClient,
    geoip: Option<Arc<GeoIp>>,
    refused: Mutex<RefusedSessions>,
}

impl Gate {
    pub fn new(rules: AccessRules, client: BackendClient, geoip: Option<Arc<GeoIp>>) -> Gate {
        Gate {
            rules: Live::new(rules),
            client,
            geoip,
            refused: Mutex::default(),
        }
    }

    /// The gate of `config` (an unusable policy reference is the operator's error).
    pub fn from_config(
        config: &crate::config::Config,
        runtime: flotilla_otp::rt::Runtime,
        geoip: Option<Arc<GeoIp>>,
    ) -> Result<Arc<Gate>, super::PolicyError> {
        Ok(Arc::new(Gate::new(
            AccessRules::from_config(config)?,
            BackendClient::new(runtime),
            geoip,
        )))
    }

    /// The rules of stream `name`.
    pub fn access(&self, name: &str) -> Arc<StreamAccess> {
        self.rules.get().of(name)
    }

    /// A reloaded config's rules, for sessions and publishers from now on.
    pub fn replace_rules(&self, rules: AccessRules) {
        self.rules.replace(rules);
    }

    /// Whether the session `key` of `stream` was refused within
    /// [`REFUSED_SESSION_MEMORY_MS`].
    pub fn refused(&self, stream: &str, key: &str, now_ms: u64) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused(stream, key, now_ms)
    }

    /// Remembers that the session `key` of `stream` was refused.
    pub fn remember_refused(&self, stream: &str, key: &str, now_ms: u64) {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remember(
                stream,
                key,
                now_ms.saturating_add(REFUSED_SESSION_MEMORY_MS),
                now_ms,
            );
    }

    fn country(&self, ip: Option<IpAddr>) -> Option<crate::geoip::Country> {
        Some(self.geoip.as_ref()?.country(ip?)).flatten()
    }

    /// Authorizes a play request of a session under `policy`, asking only when the
    /// session has no valid answer yet.
    pub async fn authorize_play(
        &self,
        policy: &Authorizer,
        authorization: &tokio::sync::Mutex<Authorization>,
        request: &PlayRequest<'_>,
        now_ms: u64,
    ) -> Result<(), PlayDenied> {
        let mut state = authorization.lock().await;
        let current = match &state.verdict {
            Some(Verdict::Allow { .. }) if state.expires_ms.is_none_or(|at| now_ms < at) => {
                return Ok(());
            }
            // An expired allow is asked again; a connection is asked once (it holds on).
            Some(Verdict::Allow { .. }) => None,
            Some(verdict) => Some(verdict.clone()),
            None => None,
        };
        let verdict = match current {
            Some(verdict) => verdict,
            None => {
                let country = self.country(request.ip);
                let subject = Subject {
                    token: request.token,
                    ip: request.ip,
                    country: country.as_ref().map(|c| c.as_str()),
                    user_agent: request.user_agent,
                };
                let backend_request = BackendRequest {
                    name: request.stream,
                    proto: protocol_name(request.protocol),
                    ip: request.ip,
                    update: state.asked > 0,
                    request_number: state.asked,
                    session_id: request.session_id,
                    stream_clients: request.stream_clients,
                    total_clients: request.total_clients,
                    token: request.token,
                    user_agent: request.user_agent,
                    referer: request.referer,
                    qs: request.query,
                };
                let verdict = policy
                    .decide(&self.client, &subject, &backend_request)
                    .await;
                state.asked = state.asked.saturating_add(1);
                state.expires_ms = match &verdict {
                    Verdict::Allow {
                        duration: Some(duration),
                    } => Some(now_ms.saturating_add(duration_ms(*duration))),
                    _ => None,
                };
                state.verdict = Some(verdict.clone());
                verdict
            }
        };
        match verdict {
            Verdict::Allow { .. } => Ok(()),
            Verdict::Deny { reason } => Err(PlayDenied::Denied { reason }),
            Verdict::Redirect(location) => Err(PlayDenied::Redirect(location)),
        }
    }

    /// Authorizes a publisher of `stream` over `proto` (`rtmp`, `rtmps`): its password,
    /// then the stream's publish policy.
    pub async fn authorize_publish(
        &self,
        stream: &str,
        proto: &str,
        ip: Option<IpAddr>,
        query: Option<&str>,
    ) -> Result<(), PublishDenied> {
        let access = self.rules.get().of(stream);
        let parameter = |name: &str| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        if let Some(password) = &access.password {
            let given = parameter("password").ok_or(PublishDenied::PasswordRequired)?;
            let given = url::form_urlencoded::parse(format!("p={given}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default();
            if !bool::from(given.as_bytes().ct_eq(password.as_bytes())) {
                return Err(PublishDenied::WrongPassword);
            }
        }
        let Some(policy) = &access.publish else {
            return Ok(());
        };
        let token = parameter("token");
        let country = self.country(ip);
        let subject = Subject {
            token,
            ip,
            country: country.as_ref().map(|c| c.as_str()),
            user_agent: proto,
        };
        let request = BackendRequest {
            name: stream,
            proto,
            ip,
            token,
            user_agent: proto,
            qs: query,
            ..BackendRequest::default()
        };
        match policy.decide(&self.client, &subject, &request).await {
            Verdict::Allow { .. } => Ok(()),
            Verdict::Deny { reason } => Err(PublishDenied::Denied { reason }),
            Verdict::Redirect(location) => Err(PublishDenied::Denied {
                reason: format!(
                    "{}: a redirect to {location} (publishers are not redirected)",
                    policy.label
                ),
            }),
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_tokens_expire_and_stay_bounded() {
        let mut refused = RefusedSessions::default();
        refused.remember("s", "t", 1_000, 0);
        assert!(refused.refused("s", "t", 999));
        assert!(!refused.refused("s", "t", 1_000));
        assert!(!refused.refused("other", "t", 0));
        for i in 0..MAX_REFUSED_SESSIONS + 10 {
            refused.remember("s", &i.to_string(), 10_000 + i as u64, 0);
        }
        assert!(refused.until_ms.len() <= MAX_REFUSED_SESSIONS);
        // The newest are kept.
        assert!(refused.refused("s", &(MAX_REFUSED_SESSIONS + 9).to_string(), 0));
    }
}
