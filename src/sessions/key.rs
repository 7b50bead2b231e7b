//! What a session is found by: its stream and who the viewer is.
//!
//! Every HLS or DASH request finds its session, so the lookup takes the request's own
//! strings: a [`KeyView`] borrows them, hashes exactly as the [`SessionKey`] it stands
//! for (both derive `Hash` over the same fields in the same order) and compares equal
//! to it (`hashbrown::Equivalent`), so a request allocates nothing to find its session.

use std::net::IpAddr;

/// Who a session's viewer is, beside the stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The token the viewer presents (`auth_token` parameter).
    Token(String),
    /// A viewer without a token making many requests (HLS, DASH): its address and
    /// user agent.
    Client(Option<IpAddr>, String),
    /// A connection that is a session of its own: a number drawn for it.
    Connection(u64),
}

/// A session's key in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub stream: String,
    pub identity: Identity,
}

/// [`Identity`] borrowed from a request. Its variants and fields mirror `Identity`'s, in
/// the same order: their derived hashes are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityView<'a> {
    Token(&'a str),
    Client(Option<IpAddr>, &'a str),
    Connection(u64),
}

/// [`SessionKey`] borrowed from a request (fields in the same order: equal hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyView<'a> {
    pub stream: &'a str,
    pub identity: IdentityView<'a>,
}

impl hashbrown::Equivalent<SessionKey> for KeyView<'_> {
    fn equivalent(&self, key: &SessionKey) -> bool {
        *self == key.view()
    }
}

impl KeyView<'_> {
    /// The key this view stands for, owned (when a session is opened).
    pub fn to_key(self) -> SessionKey {
        SessionKey {
            stream: self.stream.to_string(),
            identity: match self.identity {
                IdentityView::Token(token) => Identity::Token(token.to_string()),
                IdentityView::Client(ip, agent) => Identity::Client(ip, agent.to_string()),
                IdentityView::Connection(number) => Identity::Connection(number),
            },
        }
    }
}

impl SessionKey {
    /// The view of this key (what a later request of the session presents).
    pub fn view(&self) -> KeyView<'_> {
        KeyView {
            stream: &self.stream,
            identity: self.identity.view(),
        }
    }
}

impl Identity {
    /// This identity borrowed, as a request presents it.
    pub fn view(&self) -> IdentityView<'_> {
        match self {
            Identity::Token(token) => IdentityView::Token(token),
            Identity::Client(ip, agent) => IdentityView::Client(*ip, agent),
            Identity::Connection(number) => IdentityView::Connection(*number),
        }
    }

    /// How a refusal of a session with this identity is remembered
    /// (`crate::auth::Gate::refused`): `None` for a connection of its own, which no later
    /// request can be.
    pub fn refusal_key(&self) -> Option<String> {
        match self {
            Identity::Token(token) => Some(format!("t:{token}")),
            Identity::Client(ip, agent) => Some(format!(
                "c:{}|{agent}",
                ip.map_or_else(String::new, |ip| ip.to_string())
            )),
            Identity::Connection(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashbrown::Equivalent;
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    fn identity() -> impl Strategy<Value = Identity> {
        prop_oneof![
            ".{0,40}".prop_map(Identity::Token),
            (proptest::option::of(any::<[u8; 4]>()), ".{0,40}")
                .prop_map(|(ip, agent)| { Identity::Client(ip.map(IpAddr::from), agent) }),
            any::<u64>().prop_map(Identity::Connection),
        ]
    }

    fn key() -> impl Strategy<Value = SessionKey> {
        ("[a-z/]{0,12}", identity()).prop_map(|(stream, identity)| SessionKey { stream, identity })
    }

    proptest! {
        /// A view hashes as its key and is equivalent to it and to no other key.
        #[test]
        fn a_view_hashes_and_compares_as_its_key(a in key(), b in key()) {
            let hasher = hashbrown::DefaultHashBuilder::default();
            prop_assert_eq!(hasher.hash_one(a.view()), hasher.hash_one(&a));
            prop_assert!(a.view().equivalent(&a));
            prop_assert_eq!(a.view().equivalent(&b), a == b);
            prop_assert_eq!(a.view().to_key(), a);
        }
    }

    #[test]
    fn a_connection_of_its_own_is_never_remembered_as_refused() {
        assert_eq!(Identity::Connection(7).refusal_key(), None);
        assert_eq!(
            Identity::Token("abc".into()).refusal_key().as_deref(),
            Some("t:abc")
        );
        assert_eq!(
            Identity::Client(Some([10, 0, 0, 1].into()), "vlc".into())
                .refusal_key()
                .as_deref(),
            Some("c:10.0.0.1|vlc")
        );
    }
}
