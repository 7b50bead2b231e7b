//! Handshake signatures without arithmetic, for the simulated mesh.
//!
//! Every mesh handshake has each side sign the transcript with the cluster identity's
//! Ed25519 key (TLS 1.3 CertificateVerify) and the other verify it: a scalar
//! multiplication to sign, a double one to verify, and SHA-512 around both. With the key
//! agreement already free of arithmetic (`crypto::WorldKx`), these were a third of a
//! handshake and 6 % of a simulated 5-node, 100-stream run (callgrind, 2026-11-22).
//!
//! In a simulation a handshake signature is a tag instead: the signer's public key and
//! their [`mix`](crate::mix) with the message. It proves nothing to anyone who knows
//! the public key — everyone — which no simulation needs: the question a run asks is
//! what the cluster does, not whether Ed25519 holds. What stays real:
//! - every handshake message, size and state, rustls's and quinn's own (a tag is as long
//!   as an Ed25519 signature);
//! - the check that the tag was made for this transcript and this public key (a tag of
//!   another handshake or another key is refused, as a forged signature would be);
//! - certificate chains: checked by ring's algorithms as in a node, so a certificate that
//!   is not a cluster identity is still refused on its real Ed25519 signature.
//!
//! Only Ed25519 keys change; any other key loads through ring's provider unchanged.

use std::sync::Arc;

use rustls::crypto::{KeyProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm, alg_id,
};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

use crate::mix::{MIX_BYTES, mix};

/// Length of a public key (an Ed25519 public key's length).
const KEY_BYTES: usize = 32;
/// Length of a tag: the public key, then the mix (an Ed25519 signature's length).
const TAG_BYTES: usize = KEY_BYTES + MIX_BYTES;

/// The tag of `message` under `public_key`: the key, then their [`mix`].
fn tag(public_key: &[u8], message: &[u8]) -> [u8; TAG_BYTES] {
    let mut out = [0u8; TAG_BYTES];
    let key_bytes = public_key.len().min(KEY_BYTES);
    out[..key_bytes].copy_from_slice(&public_key[..key_bytes]);
    out[KEY_BYTES..].copy_from_slice(&mix(&[public_key, message]));
    out
}

/// Verifies tags of Ed25519 keys (handshake signatures only: see the module header).
#[derive(Debug)]
struct WorldVerifier;

impl SignatureVerificationAlgorithm for WorldVerifier {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        if public_key.len() == KEY_BYTES && signature == tag(public_key, message) {
            Ok(())
        } else {
            Err(InvalidSignature)
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

static WORLD_VERIFIER: WorldVerifier = WorldVerifier;

/// The handshake signatures the simulated nodes accept: Ed25519's scheme, verified as
/// tags.
static WORLD_MAPPING: &[(SignatureScheme, &[&dyn SignatureVerificationAlgorithm])] =
    &[(SignatureScheme::ED25519, &[&WORLD_VERIFIER])];

/// Signature verification of a simulated node: `ring`'s algorithms for certificate
/// chains, tags for handshake signatures.
pub fn verification(ring: &WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    WebPkiSupportedAlgorithms {
        all: ring.all,
        mapping: WORLD_MAPPING,
    }
}

/// Loads Ed25519 keys as tag signers, any other key as ring's provider does.
#[derive(Debug)]
pub struct WorldKeys;

impl KeyProvider for WorldKeys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        let pair = match &key_der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(
                    pkcs8.secret_pkcs8_der(),
                )
                .ok()
            }
            _ => None,
        };
        let Some(pair) = pair else {
            return rustls::crypto::ring::sign::any_supported_type(&key_der);
        };
        // The real public key, once per key loaded: it is what the certificate carries
        // and what the peer's verifier is given.
        let public_key = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        Ok(Arc::new(TagSigner {
            public_key: public_key.into(),
        }))
    }
}

/// Signs handshakes with tags under one public key.
#[derive(Debug, Clone)]
struct TagSigner {
    public_key: Arc<[u8]>,
}

impl SigningKey for TagSigner {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ED25519)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

impl Signer for TagSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(tag(&self.public_key, message).to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivatePkcs8KeyDer;

    fn signer(seed_byte: u8) -> (Arc<dyn SigningKey>, Vec<u8>) {
        let seed = [seed_byte; KEY_BYTES];
        // PKCS#8 v1 of an Ed25519 seed (RFC 8410), as the node derives its identities.
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend_from_slice(&seed);
        let key = WorldKeys
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)))
            .unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        (key, public)
    }

    #[test]
    fn a_tag_verifies_for_its_message_and_key_only() {
        let (key, public) = signer(1);
        let (_, other_public) = signer(2);
        let sign = key.choose_scheme(&[SignatureScheme::ED25519]).unwrap();
        let message = b"TLS 1.3, server CertificateVerify\0transcript hash".to_vec();
        let signature = sign.sign(&message).unwrap();
        assert_eq!(signature.len(), TAG_BYTES);
        let verify = |public: &[u8], message: &[u8], signature: &[u8]| {
            WORLD_VERIFIER.verify_signature(public, message, signature)
        };
        assert!(verify(&public, &message, &signature).is_ok());
        assert!(
            verify(&other_public, &message, &signature).is_err(),
            "another key"
        );
        let mut changed = message.clone();
        changed[40] ^= 1;
        assert!(
            verify(&public, &changed, &signature).is_err(),
            "another transcript"
        );
        let mut longer = message.clone();
        longer.push(0);
        assert!(
            verify(&public, &longer, &signature).is_err(),
            "a zero appended"
        );
        let mut forged = signature.clone();
        forged[TAG_BYTES - 1] ^= 1;
        assert!(verify(&public, &message, &forged).is_err(), "a changed tag");
    }

    #[test]
    fn only_ed25519_is_offered_and_other_keys_go_to_ring() {
        let (key, _) = signer(3);
        assert!(
            key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
                .is_none()
        );
        let not_a_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0x30, 0x00]));
        assert!(
            WorldKeys.load_private_key(not_a_key).is_err(),
            "ring refuses it"
        );
    }
}
