//! Logging into the shell with `edit_auth` or `view_auth` credentials instead of the
//! cluster key, without the password crossing the wire.
//!
//! The connection is TLS without a client certificate (`mesh::auth`); both ends read the
//! same exporter value from it (RFC 8446 §7.5, [`EXPORTER_LABEL`]). On the connection's
//! first stream the client sends its user name and `HMAC-SHA256(password, "client" ‖
//! exporter)`; the node checks it against its credentials in constant time and answers
//! with the access granted and `HMAC-SHA256(password, "server" ‖ exporter)`, which the
//! client checks before it sends any command. So the node proves it knows the password
//! too, and a relay between two TLS sessions cannot replay either proof (the exporter
//! values differ). Limits: a man in the middle still sees one client proof it could try
//! to guess a weak password against offline — the cluster key is the stronger way in,
//! and `shell_allowed_from` keeps the shell off untrusted networks.

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::config::model::Credentials;
use crate::http::access::Access;

/// TLS exporter label of the login binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-flotilla-shell-login";
/// Bytes of the exporter value the proofs are bound to.
pub const BINDING_BYTES: usize = 32;
/// Longest user name accepted in a login.
pub const MAX_USER_BYTES: usize = 256;

/// What the client sends first on a login connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub user: String,
    /// Hex of the client proof.
    pub proof: String,
}

/// Which side a proof comes from (so one side's proof is never valid as the other's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Client => b"flotilla-shell-login client",
            Side::Server => b"flotilla-shell-login server",
        }
    }
}

/// The exporter value of `connection` both ends bind their proofs to.
pub fn binding(connection: &quinn::Connection) -> Result<[u8; BINDING_BYTES], NoExporter> {
    let mut value = [0u8; BINDING_BYTES];
    connection
        .export_keying_material(&mut value, EXPORTER_LABEL, b"")
        .map_err(NoExporter)?;
    Ok(value)
}

/// The connection's TLS session gave no exporter value: this node's own failure (the
/// session is rustls's TLS 1.3, which always has one), so no login can be proven.
#[derive(Debug, thiserror::Error)]
#[error("no TLS exporter on this connection: {0:?}")]
pub struct NoExporter(pub quinn::crypto::ExportKeyingMaterialError);

impl crate::error::Classified for NoExporter {
    fn fault(&self) -> crate::error::Fault {
        crate::error::Fault::Local
    }
}

/// `side`'s proof of `password` for the session with `binding`, in hex.
pub fn proof(password: &str, side: Side, binding: &[u8; BINDING_BYTES]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, password.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(side.label());
    context.update(binding);
    hex(context.sign().as_ref())
}

/// Whether `presented` (hex) is `side`'s proof of `password` (compared in constant time).
pub fn verify(password: &str, side: Side, binding: &[u8; BINDING_BYTES], presented: &str) -> bool {
    let Some(tag) = unhex(presented) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, password.as_bytes());
    let mut message = side.label().to_vec();
    message.extend_from_slice(binding);
    hmac::verify(&key, &message, &tag).is_ok()
}

/// The node's side: the access `request` proves, with the credentials that matched
/// (edit first), or `None`.
pub fn check<'a>(
    request: &LoginRequest,
    binding: &[u8; BINDING_BYTES],
    edit: Option<&'a Credentials>,
    view: Option<&'a Credentials>,
) -> Option<(Access, &'a Credentials)> {
    use subtle::ConstantTimeEq;
    if request.user.len() > MAX_USER_BYTES {
        return None;
    }
    let matches = |credentials: &Credentials| {
        let user_ok = bool::from(credentials.user.as_bytes().ct_eq(request.user.as_bytes()));
        // Both checks always run, so timing does not tell which one failed.
        let proof_ok = verify(
            &credentials.password.0,
            Side::Client,
            binding,
            &request.proof,
        );
        user_ok & proof_ok
    };
    if let Some(credentials) = edit.filter(|c| matches(c)) {
        return Some((Access::Edit, credentials));
    }
    view.filter(|c| matches(c))
        .map(|credentials| (Access::View, credentials))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::Secret;

    fn credentials(user: &str, password: &str) -> Credentials {
        Credentials {
            user: user.into(),
            password: Secret(password.into()),
        }
    }

    #[test]
    fn proofs_bind_the_password_the_side_and_the_session() {
        let session = [7u8; BINDING_BYTES];
        let other_session = [8u8; BINDING_BYTES];
        let client = proof("s3cret", Side::Client, &session);
        assert!(verify("s3cret", Side::Client, &session, &client));
        assert!(
            !verify("s3cret", Side::Server, &session, &client),
            "not the other side's"
        );
        assert!(
            !verify("s3cret", Side::Client, &other_session, &client),
            "not replayable"
        );
        assert!(!verify("guess", Side::Client, &session, &client));
        assert!(!verify("s3cret", Side::Client, &session, "zz"));
        assert!(!verify("s3cret", Side::Client, &session, &"é".repeat(32)));
    }

    #[test]
    fn the_node_grants_what_the_credentials_allow() {
        let session = [1u8; BINDING_BYTES];
        let edit = credentials("admin", "edit-pass");
        let view = credentials("viewer", "view-pass");
        let login = |user: &str, password: &str| LoginRequest {
            user: user.into(),
            proof: proof(password, Side::Client, &session),
        };
        let granted = |request: &LoginRequest| {
            check(request, &session, Some(&edit), Some(&view)).map(|(access, _)| access)
        };
        assert_eq!(granted(&login("admin", "edit-pass")), Some(Access::Edit));
        assert_eq!(granted(&login("viewer", "view-pass")), Some(Access::View));
        assert_eq!(granted(&login("admin", "view-pass")), None);
        assert_eq!(granted(&login("viewer", "edit-pass")), None);
        assert_eq!(
            granted(&login(&"a".repeat(MAX_USER_BYTES + 1), "edit-pass")),
            None
        );
        assert_eq!(
            check(&login("admin", "edit-pass"), &session, None, None),
            None
        );
    }
}
