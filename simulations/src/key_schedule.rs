//! The TLS 1.3 key schedule and quinn's reset tokens without hashing, for the simulated
//! mesh.
//!
//! A QUIC handshake derives its keys through HKDF (HMAC-SHA-256): the initial keys of
//! every connection attempt, the handshake and traffic secrets, each direction's packet
//! and header keys, the Finished messages. quinn signs a stateless-reset token with
//! HMAC-SHA-256 for every connection id it issues. With key agreement and signatures
//! already free of arithmetic (`crypto`, `signatures`), those hashes were the largest
//! cryptography left in a simulated 5-node, 100-stream run: one twentieth of it
//! (callgrind, 2026-11-22), most of it for connection attempts into
//! partitions that never complete.
//!
//! A simulated node runs the very same schedule, rustls's own, with [`mix`] where HMAC
//! would be: an extract mixes salt and secret, an expand mixes the key with the label
//! and a block counter, a Finished tag mixes key and transcript. Both sides of a
//! handshake still derive the same keys from the same transcript and different keys from
//! different ones, and packets are still sealed with AES-128-GCM under those keys: only
//! the secrecy of the keys is gone, which no simulation needs.

use std::sync::{Arc, OnceLock};

use rustls::crypto::hmac::Tag;
use rustls::crypto::tls13::{Hkdf, HkdfExpander, OkmBlock, OutputLengthError};
use rustls::{CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};

use crate::mix::{MIX_BYTES, mix};

/// The most an expansion may produce (HKDF's limit: 255 blocks).
const MAX_EXPAND_BYTES: usize = 255 * MIX_BYTES;

/// HKDF with [`mix`] for HMAC.
#[derive(Debug)]
struct WorldHkdf;

/// A pseudorandom key, expanded by mixing it with the label and a block counter.
struct WorldExpander {
    prk: [u8; MIX_BYTES],
}

impl WorldExpander {
    fn block(&self, counter: u8, info: &[&[u8]]) -> [u8; MIX_BYTES] {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(info.len() + 2);
        parts.push(&self.prk);
        parts.extend_from_slice(info);
        let counter = [counter];
        parts.push(&counter);
        mix(&parts)
    }
}

impl HkdfExpander for WorldExpander {
    fn expand_slice(&self, info: &[&[u8]], output: &mut [u8]) -> Result<(), OutputLengthError> {
        if output.len() > MAX_EXPAND_BYTES {
            return Err(OutputLengthError);
        }
        for (index, chunk) in output.chunks_mut(MIX_BYTES).enumerate() {
            // At most 255 chunks (checked above), so the counter fits a byte, from 1 as
            // HKDF's.
            let counter = u8::try_from(index + 1).map_err(|_| OutputLengthError)?;
            chunk.copy_from_slice(&self.block(counter, info)[..chunk.len()]);
        }
        Ok(())
    }

    fn expand_block(&self, info: &[&[u8]]) -> OkmBlock {
        OkmBlock::new(&self.block(1, info))
    }

    fn hash_len(&self) -> usize {
        MIX_BYTES
    }
}

/// All zeros, for an extraction without input key material.
const ZERO_IKM: [u8; MIX_BYTES] = [0u8; MIX_BYTES];

impl Hkdf for WorldHkdf {
    fn extract_from_zero_ikm(&self, salt: Option<&[u8]>) -> Box<dyn HkdfExpander> {
        self.extract_from_secret(salt, &ZERO_IKM)
    }

    fn extract_from_secret(&self, salt: Option<&[u8]>, secret: &[u8]) -> Box<dyn HkdfExpander> {
        Box::new(WorldExpander {
            prk: mix(&[salt.unwrap_or(&ZERO_IKM), secret]),
        })
    }

    fn expander_for_okm(&self, okm: &OkmBlock) -> Box<dyn HkdfExpander> {
        Box::new(WorldExpander {
            prk: mix(&[okm.as_ref()]),
        })
    }

    fn hmac_sign(&self, key: &OkmBlock, message: &[u8]) -> Tag {
        Tag::new(&mix(&[key.as_ref(), message]))
    }
}

static WORLD_HKDF: WorldHkdf = WorldHkdf;

/// The one suite the simulated nodes offer: TLS13_AES_128_GCM_SHA256 with its key
/// schedule run on [`mix`]; the same suite id, transcript hash, AEAD and QUIC packet
/// protection as ring's. The same for every node (no node's state), built once.
pub fn world_suite() -> SupportedCipherSuite {
    static SUITE: OnceLock<Tls13CipherSuite> = OnceLock::new();
    let suite = SUITE.get_or_init(|| {
        let SupportedCipherSuite::Tls13(ring) =
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        else {
            unreachable!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite")
        };
        Tls13CipherSuite {
            common: CipherSuiteCommon {
                suite: ring.common.suite,
                hash_provider: ring.common.hash_provider,
                confidentiality_limit: ring.common.confidentiality_limit,
            },
            hkdf_provider: &WORLD_HKDF,
            aead_alg: ring.aead_alg,
            quic: ring.quic,
        }
    });
    SupportedCipherSuite::Tls13(suite)
}

/// quinn's stateless-reset tokens, signed with [`mix`] under a node's key.
pub struct WorldResetKey {
    key: [u8; MIX_BYTES],
}

impl WorldResetKey {
    pub fn new(key: [u8; MIX_BYTES]) -> Arc<WorldResetKey> {
        Arc::new(WorldResetKey { key })
    }
}

impl quinn::crypto::HmacKey for WorldResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let tag = mix(&[&self.key, data]);
        let len = signature_out.len().min(MIX_BYTES);
        signature_out[..len].copy_from_slice(&tag[..len]);
    }

    fn signature_len(&self) -> usize {
        MIX_BYTES
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn::crypto::CryptoError> {
        if signature == mix(&[&self.key, data]) {
            Ok(())
        } else {
            Err(quinn::crypto::CryptoError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::crypto::HmacKey;

    #[test]
    fn expansions_follow_key_and_label_and_fill_any_length() {
        let expander = WORLD_HKDF.extract_from_secret(Some(b"salt"), b"secret");
        let again = WORLD_HKDF.extract_from_secret(Some(b"salt"), b"secret");
        let other = WORLD_HKDF.extract_from_secret(Some(b"salt"), b"secreT");
        let expand = |expander: &dyn HkdfExpander, label: &[u8], len: usize| {
            let mut out = vec![0u8; len];
            expander.expand_slice(&[label], &mut out).unwrap();
            out
        };
        assert_eq!(
            expand(&*expander, b"key", 16),
            expand(&*again, b"key", 16),
            "both sides derive the same"
        );
        assert_ne!(expand(&*expander, b"key", 16), expand(&*other, b"key", 16));
        assert_ne!(
            expand(&*expander, b"key", 16),
            expand(&*expander, b"iv", 16)
        );
        let long = expand(&*expander, b"key", 80);
        assert_eq!(&long[..16], &expand(&*expander, b"key", 16)[..]);
        assert_ne!(&long[..32], &long[32..64], "each block differs");
        let mut too_long = vec![0u8; MAX_EXPAND_BYTES + 1];
        assert!(expander.expand_slice(&[b"key"], &mut too_long).is_err());
        let okm = expander.expand_block(&[b"traffic"]);
        assert_ne!(
            WORLD_HKDF.hmac_sign(&okm, b"transcript").as_ref(),
            WORLD_HKDF.hmac_sign(&okm, b"transcripT").as_ref()
        );
    }

    #[test]
    fn a_reset_token_verifies_under_its_key_only() {
        let key = WorldResetKey::new([1; MIX_BYTES]);
        let other = WorldResetKey::new([2; MIX_BYTES]);
        let mut token = [0u8; MIX_BYTES];
        key.sign(b"connection id", &mut token);
        assert!(key.verify(b"connection id", &token).is_ok());
        assert!(key.verify(b"connection iD", &token).is_err());
        assert!(other.verify(b"connection id", &token).is_err());
    }
}
