//! The static rules of an `auth_backend` block, decided without asking anyone.
//!
//! Flussonic's order, made explicit: allow token → deny token → allow ip → deny ip →
//! allow country → deny country → allow ua → deny ua. The first rule that matches ends
//! the evaluation; when none does, the block's HTTP backends are asked, and when none of
//! them answers, `allow default;` / `deny default;` decides (deny when absent).
//!
//! A pure function of the request: property-tested below.

use std::net::IpAddr;

use crate::config::model::{AuthRule, AuthSubject};
use crate::config::values::Cidr;

/// What a rule can see of a viewer or publisher.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub token: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// ISO 3166 code from the GeoIP database, if one is configured and knows the address.
    pub country: Option<&'a str>,
    pub user_agent: &'a str,
}

/// A rule's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleVerdict {
    Allow,
    Deny,
}

/// One compiled rule: its networks parsed once.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    allow: bool,
    subject: AuthSubject,
    values: Vec<String>,
    networks: Vec<Cidr>,
}

impl CompiledRule {
    pub fn compile(rule: &AuthRule) -> CompiledRule {
        let networks = match rule.subject {
            // The config reader refused rules whose networks do not parse.
            AuthSubject::Ip => rule
                .values
                .iter()
                .filter_map(|value| crate::config::values::Value::parse_value(value).ok())
                .collect(),
            _ => Vec::new(),
        };
        CompiledRule {
            allow: rule.allow,
            subject: rule.subject,
            values: rule.values.clone(),
            networks,
        }
    }

    fn matches(&self, subject: &Subject<'_>) -> bool {
        match self.subject {
            AuthSubject::Token => subject
                .token
                .is_some_and(|token| self.values.iter().any(|v| v == token)),
            AuthSubject::Ip => subject.ip.is_some_and(|ip| {
                let ip = ip.to_canonical();
                self.networks.iter().any(|net| net.0.contains(&ip))
            }),
            AuthSubject::Country => subject
                .country
                .is_some_and(|country| self.values.iter().any(|v| v.eq_ignore_ascii_case(country))),
            // User agents are matched by substring: "BadBot" catches "BadBot/1.0 (x)".
            AuthSubject::Ua => self
                .values
                .iter()
                .any(|v| !v.is_empty() && subject.user_agent.contains(v.as_str())),
        }
    }
}

/// Evaluation order of (subject, allow) pairs.
const ORDER: [(AuthSubject, bool); 8] = [
    (AuthSubject::Token, true),
    (AuthSubject::Token, false),
    (AuthSubject::Ip, true),
    (AuthSubject::Ip, false),
    (AuthSubject::Country, true),
    (AuthSubject::Country, false),
    (AuthSubject::Ua, true),
    (AuthSubject::Ua, false),
];

/// The first matching rule's verdict in Flussonic's order, or `None`: ask the backends.
pub fn decide(rules: &[CompiledRule], subject: &Subject<'_>) -> Option<RuleVerdict> {
    ORDER.iter().find_map(|&(kind, allow)| {
        rules
            .iter()
            .filter(|rule| rule.subject == kind && rule.allow == allow)
            .any(|rule| rule.matches(subject))
            .then_some(if allow {
                RuleVerdict::Allow
            } else {
                RuleVerdict::Deny
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(allow: bool, subject: AuthSubject, values: &[&str]) -> CompiledRule {
        CompiledRule::compile(&AuthRule {
            allow,
            subject,
            values: values.iter().map(|v| v.to_string()).collect(),
        })
    }

    fn viewer<'a>(
        token: Option<&'a str>,
        ip: &str,
        country: Option<&'a str>,
        ua: &'a str,
    ) -> Subject<'a> {
        Subject {
            token,
            ip: Some(ip.parse().unwrap()),
            country,
            user_agent: ua,
        }
    }

    #[test]
    fn the_order_is_token_ip_country_ua_with_allow_before_deny() {
        let rules = [
            rule(false, AuthSubject::Ip, &["10/8"]),
            rule(true, AuthSubject::Token, &["vip"]),
            rule(false, AuthSubject::Country, &["CN"]),
            rule(true, AuthSubject::Ip, &["10.1/16"]),
            rule(false, AuthSubject::Ua, &["BadBot"]),
        ];
        // A known token wins over a denied network.
        assert_eq!(
            decide(&rules, &viewer(Some("vip"), "10.9.9.9", None, "")),
            Some(RuleVerdict::Allow)
        );
        // allow ip before deny ip.
        assert_eq!(
            decide(&rules, &viewer(None, "10.1.2.3", None, "")),
            Some(RuleVerdict::Allow)
        );
        assert_eq!(
            decide(&rules, &viewer(None, "10.2.2.3", None, "")),
            Some(RuleVerdict::Deny)
        );
        assert_eq!(
            decide(&rules, &viewer(None, "192.0.2.1", Some("cn"), "")),
            Some(RuleVerdict::Deny)
        );
        assert_eq!(
            decide(&rules, &viewer(None, "192.0.2.1", None, "BadBot/1.0 (x)")),
            Some(RuleVerdict::Deny)
        );
        assert_eq!(
            decide(&rules, &viewer(None, "192.0.2.1", Some("DE"), "ffmpeg")),
            None
        );
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_networks() {
        let rules = [rule(false, AuthSubject::Ip, &["192.0.2.0/24"])];
        assert_eq!(
            decide(&rules, &viewer(None, "::ffff:192.0.2.7", None, "")),
            Some(RuleVerdict::Deny)
        );
    }

    proptest! {
        /// Without rules nothing is decided; a deny-everything rule denies everyone
        /// a higher-ranked rule does not allow.
        #[test]
        fn deny_all_denies_unless_a_token_is_allowed(octets in any::<[u8; 4]>(), token in "[a-z]{0,8}") {
            let ip = std::net::Ipv4Addr::from(octets).to_string();
            let subject = viewer(Some(&token), &ip, None, "ua");
            prop_assert_eq!(decide(&[], &subject), None);
            let rules = [rule(false, AuthSubject::Ip, &["0.0.0.0/0"]), rule(true, AuthSubject::Token, &["letmein"])];
            let expected = if token == "letmein" { RuleVerdict::Allow } else { RuleVerdict::Deny };
            prop_assert_eq!(decide(&rules, &subject), Some(expected));
        }
    }
}
