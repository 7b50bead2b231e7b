//! One authorization policy: an `on_play`/`on_publish`/`auth` URL, or a named
//! `auth_backend` block (rules, then backends asked in parallel, then its default).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use super::backend::{BackendAnswer, BackendClient, BackendRequest, BackendUrl, BackendUrlError};
use super::rules::{CompiledRule, RuleVerdict, Subject, decide};
use crate::config::model::AuthBackend;

/// Most HTTP backends one `auth_backend` block asks (each call is bounded on its own).
pub const MAX_BACKENDS_PER_POLICY: usize = 8;

/// The outcome of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; for `duration` when a backend limited it (else for the session).
    Allow { duration: Option<Duration> },
    /// Refused. `reason` is for the node's log only: the client is told "denied".
    Deny { reason: String },
    /// The viewer is sent to this URL (a backend's 302).
    Redirect(String),
}

/// A compiled policy.
#[derive(Debug)]
pub struct Authorizer {
    /// How the policy is named in logs: the URL or `auth_backend NAME`.
    pub label: String,
    rules: Vec<CompiledRule>,
    backends: Vec<BackendUrl>,
    /// What decides when no rule matched and no backend answered.
    default_allow: bool,
}

/// Why a policy reference is unusable (the operator's config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Url(#[from] BackendUrlError),
    #[error("`auth://{0}` names no auth_backend block")]
    UnknownBackend(String),
    #[error("auth_backend {0} lists more than {MAX_BACKENDS_PER_POLICY} backends")]
    TooManyBackends(String),
}

impl Authorizer {
    /// The policy a stream option names: `auth://NAME` or an http:// URL (a lone
    /// backend: one that does not answer denies).
    pub fn resolve(value: &str, blocks: &[AuthBackend]) -> Result<Arc<Authorizer>, PolicyError> {
        if let Some(name) = value.strip_prefix("auth://") {
            let block = blocks
                .iter()
                .find(|block| block.name == name)
                .ok_or_else(|| PolicyError::UnknownBackend(name.into()))?;
            return Authorizer::from_block(block).map(Arc::new);
        }
        Ok(Arc::new(Authorizer {
            label: value.to_string(),
            rules: Vec::new(),
            backends: vec![BackendUrl::parse(value)?],
            default_allow: false,
        }))
    }

    fn from_block(block: &AuthBackend) -> Result<Authorizer, PolicyError> {
        if block.backends.len() > MAX_BACKENDS_PER_POLICY {
            return Err(PolicyError::TooManyBackends(block.name.clone()));
        }
        Ok(Authorizer {
            label: format!("auth_backend {}", block.name),
            rules: block.rules.iter().map(CompiledRule::compile).collect(),
            backends: block
                .backends
                .iter()
                .map(|url| BackendUrl::parse(url))
                .collect::<Result<_, _>>()?,
            default_allow: block.default_allow.unwrap_or(false),
        })
    }

    /// Decides for `subject`: rules, then the backends (in parallel), then the default.
    pub async fn decide(
        &self,
        client: &BackendClient,
        subject: &Subject<'_>,
        request: &BackendRequest<'_>,
    ) -> Verdict {
        match decide(&self.rules, subject) {
            Some(RuleVerdict::Allow) => return Verdict::Allow { duration: None },
            Some(RuleVerdict::Deny) => {
                return Verdict::Deny {
                    reason: format!("{}: denied by a rule", self.label),
                };
            }
            None => {}
        }
        let answers = join_all(self.backends.iter().map(|url| client.ask(url, request))).await;
        combine(&self.label, &answers, self.default_allow)
    }
}

/// Several backends' answers as one: any allow allows, else a redirect redirects, else
/// any deny denies; when none answered, the default decides.
pub fn combine(label: &str, answers: &[BackendAnswer], default_allow: bool) -> Verdict {
    if let Some(duration) = answers.iter().find_map(|answer| match answer {
        BackendAnswer::Allow { duration, .. } => Some(*duration),
        _ => None,
    }) {
        return Verdict::Allow { duration };
    }
    if let Some(location) = answers.iter().find_map(|answer| match answer {
        BackendAnswer::Redirect(location) => Some(location.clone()),
        _ => None,
    }) {
        return Verdict::Redirect(location);
    }
    if let Some(status) = answers.iter().find_map(|answer| match answer {
        BackendAnswer::Deny(status) => Some(*status),
        _ => None,
    }) {
        return Verdict::Deny {
            reason: format!("{label}: the backend answered {status}"),
        };
    }
    let why = answers
        .iter()
        .filter_map(|answer| match answer {
            BackendAnswer::Unavailable(why) => Some(why.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ");
    match default_allow {
        true => {
            tracing::warn!(policy = %label, reason = %why, "no authorization backend answered: allowed by `allow default`");
            Verdict::Allow { duration: None }
        }
        false => Verdict::Deny {
            reason: format!("{label}: no backend answered ({why})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> BackendAnswer {
        BackendAnswer::Allow {
            duration: None,
            user_id: None,
        }
    }

    #[test]
    fn any_allow_wins_then_redirects_then_denials_then_the_default() {
        let down = BackendAnswer::Unavailable("refused".into());
        assert_eq!(
            combine("p", &[BackendAnswer::Deny(403), allow()], false),
            Verdict::Allow { duration: None }
        );
        assert!(matches!(
            combine(
                "p",
                &[
                    BackendAnswer::Deny(403),
                    BackendAnswer::Redirect("u".into())
                ],
                false
            ),
            Verdict::Redirect(_)
        ));
        assert!(matches!(
            combine("p", &[BackendAnswer::Deny(403), down.clone()], true),
            Verdict::Deny { .. }
        ));
        assert_eq!(
            combine("p", std::slice::from_ref(&down), true),
            Verdict::Allow { duration: None }
        );
        assert!(matches!(combine("p", &[down], false), Verdict::Deny { .. }));
        // A block without backends: its default.
        assert_eq!(combine("p", &[], true), Verdict::Allow { duration: None });
    }

    #[test]
    fn references_resolve_or_say_what_is_wrong() {
        let block = AuthBackend {
            name: "main".into(),
            backends: vec!["http://127.0.0.1:1/x".into()],
            ..AuthBackend::default()
        };
        assert!(Authorizer::resolve("auth://main", std::slice::from_ref(&block)).is_ok());
        assert_eq!(
            Authorizer::resolve("auth://other", &[block]).unwrap_err(),
            PolicyError::UnknownBackend("other".into())
        );
        assert!(Authorizer::resolve("ftp://x/", &[]).is_err());
    }
}
