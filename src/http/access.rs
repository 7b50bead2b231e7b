//! Who may use the HTTP API: `api_allowed_from`, `view_auth` and `edit_auth`.
//!
//! Rules (Flussonic's, made explicit):
//! 1. With `api_allowed_from`, a client outside every listed network gets 403.
//! 2. With neither `view_auth` nor `edit_auth`, the API is open (a start-up warning says so).
//! 3. Otherwise reading needs either credential, changing needs `edit_auth`; a missing or
//!    wrong credential gets 401 with a `WWW-Authenticate` challenge.
//!
//! Credentials are compared in constant time, and `Bearer base64(user:pass)` is accepted
//! as well as `Basic`, as Flussonic's own Kubernetes manifests send it.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::model::{Config, Credentials};

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing: credentials were required and missing or wrong.
    None,
    /// Read-only API.
    View,
    /// Everything, including secrets in the config endpoint and actor kills.
    Edit,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's address is outside `api_allowed_from` (403).
    NetworkNotAllowed,
    /// Credentials missing or wrong (401).
    Unauthorized,
    /// Valid but read-only credentials on a change (403).
    ReadOnly,
}

/// Longest Authorization header examined: real ones are < 200 bytes.
const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// The API access policy of a node, derived from its config.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    allowed_from: Vec<ipnet::IpNet>,
    view: Option<Credentials>,
    edit: Option<Credentials>,
}

impl AccessPolicy {
    pub fn from_config(config: &Config) -> AccessPolicy {
        AccessPolicy {
            allowed_from: config.api_allowed_from.iter().map(|c| c.0).collect(),
            view: config.view_auth.clone(),
            edit: config.edit_auth.clone(),
        }
    }

    /// True when anyone who can reach the port can use the API.
    pub fn is_open(&self) -> bool {
        self.view.is_none() && self.edit.is_none()
    }

    /// The access a request from `client` with `headers` gets, or why it is refused.
    pub fn check(
        &self,
        client: Option<IpAddr>,
        headers: &HeaderMap,
        needed: Access,
    ) -> Result<Access, Refusal> {
        if !self.allowed_from.is_empty() {
            let allowed = client.is_some_and(|ip| {
                let ip = canonical_ip(ip);
                self.allowed_from.iter().any(|net| net.contains(&ip))
            });
            if !allowed {
                return Err(Refusal::NetworkNotAllowed);
            }
        }
        let granted = if self.is_open() {
            // An open API grants reading; changing still needs edit_auth to exist.
            Access::View
        } else {
            self.credentials_access(headers)
        };
        match (granted, needed) {
            (Access::None, _) => Err(Refusal::Unauthorized),
            (Access::View, Access::Edit) if self.is_open() => Err(Refusal::Unauthorized),
            (Access::View, Access::Edit) => Err(Refusal::ReadOnly),
            (granted, _) => Ok(granted),
        }
    }

    fn credentials_access(&self, headers: &HeaderMap) -> Access {
        let Some((user, password)) = presented_credentials(headers) else {
            return Access::None;
        };
        let matches = |expected: &Option<Credentials>| {
            expected.as_ref().is_some_and(|c| {
                let user_ok = c.user.as_bytes().ct_eq(user.as_bytes());
                let password_ok = c.password.0.as_bytes().ct_eq(password.as_bytes());
                bool::from(user_ok & password_ok)
            })
        };
        if matches(&self.edit) {
            Access::Edit
        } else if matches(&self.view) {
            Access::View
        } else {
            Access::None
        }
    }
}

/// IPv4-mapped IPv6 clients (dual-stack sockets) are matched as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `user:password` from `Authorization: Basic …` or `Bearer base64(user:pass)`.
fn presented_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") && !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn policy(text: &str) -> AccessPolicy {
        AccessPolicy::from_config(&load_str("t", text).unwrap().config)
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {token}").parse().unwrap(),
        );
        headers
    }

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn open_api_reads_but_never_edits() {
        let open = policy("http 80;");
        assert_eq!(
            open.check(LOCAL, &HeaderMap::new(), Access::View),
            Ok(Access::View)
        );
        assert_eq!(
            open.check(LOCAL, &HeaderMap::new(), Access::Edit),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn credentials_grant_their_level() {
        let p = policy("edit_auth admin secret1; view_auth viewer secret2;");
        assert_eq!(
            p.check(LOCAL, &HeaderMap::new(), Access::View),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            p.check(LOCAL, &basic("viewer", "secret2"), Access::View),
            Ok(Access::View)
        );
        assert_eq!(
            p.check(LOCAL, &basic("viewer", "secret2"), Access::Edit),
            Err(Refusal::ReadOnly)
        );
        assert_eq!(
            p.check(LOCAL, &basic("admin", "secret1"), Access::Edit),
            Ok(Access::Edit)
        );
        assert_eq!(
            p.check(LOCAL, &basic("admin", "wrong"), Access::View),
            Err(Refusal::Unauthorized)
        );
        let mut bearer = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode("admin:secret1");
        bearer.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        assert_eq!(p.check(LOCAL, &bearer, Access::Edit), Ok(Access::Edit));
    }

    #[test]
    fn networks_are_checked_before_credentials() {
        let p = policy("api_allowed_from 10/8; edit_auth admin secret1;");
        assert_eq!(
            p.check(LOCAL, &basic("admin", "secret1"), Access::View),
            Err(Refusal::NetworkNotAllowed)
        );
        let inside = Some("10.2.3.4".parse().unwrap());
        assert_eq!(
            p.check(inside, &basic("admin", "secret1"), Access::View),
            Ok(Access::Edit)
        );
        let mapped = Some("::ffff:10.2.3.4".parse().unwrap());
        assert_eq!(
            p.check(mapped, &basic("admin", "secret1"), Access::View),
            Ok(Access::Edit)
        );
        assert_eq!(
            p.check(None, &basic("admin", "secret1"), Access::View),
            Err(Refusal::NetworkNotAllowed)
        );
    }

    #[test]
    fn malformed_authorization_is_no_credential() {
        let p = policy("edit_auth admin secret1;");
        for value in ["Basic", "Basic !!!", "Digest abc", "Basic YWRtaW4="] {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(
                p.check(LOCAL, &headers, Access::View),
                Err(Refusal::Unauthorized),
                "{value}"
            );
        }
    }
}
