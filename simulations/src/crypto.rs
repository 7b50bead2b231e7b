//! Seeded cryptography for the simulated mesh.
//!
//! A QUIC connection draws randomness in places the run's seed did not reach: quinn's
//! connection ids, rustls's randoms and session ids, its key shares (ring generates them
//! from the OS), and quinn's token and reset keys. The bytes themselves change nothing a node decides,
//! but the ciphertext built from them does reach decisions: a stray packet of a dead
//! connection that a restarted endpoint reads as a new connection attempt decodes to
//! garbage that is *sometimes* dropped (reserved bits) and sometimes answered (failed
//! authentication), and which one depends on those bytes. Runs of one seed then part
//! ways (docs/simulation.md, determinism). So in a simulation every such byte comes from
//! the seed:
//!
//! - rustls's [`SecureRandom`] and key shares ([`WorldKx`]) read the world's generator, which
//!   [`reseed`] sets at the start of each run. rustls wants these as `'static`, so the
//!   generator lives in a thread-local: a simulated world runs on one thread (every
//!   host, every handshake), one world at a time per thread, and each run reseeds it
//!   first — tests that run worlds on parallel threads do not share it.
//! - quinn's connection ids — those an endpoint issues and a client's initial
//!   destination ids, both drawn from the thread's OS-seeded generator by default — and
//!   its token and stateless-reset keys derive from each node's own seed.
//!
//! The provider built here also leaves the arithmetic out of handshakes: key shares
//! ([`WorldKx`]), handshake signatures (`signatures`) and the key schedule
//! (`key_schedule`). None of this is secure, and it never leaves the simulator: a node
//! uses [`MeshCrypto::system`].

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use flotilla::mesh::auth::MeshCrypto;
use flotilla_otp::rt::Runtime;
use quinn::ConnectionIdGenerator;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::{Error, NamedGroup, PeerMisbehaved};

thread_local! {
    /// The world's generator: the TLS randomness of every node of the world this thread
    /// runs.
    static WORLD: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Starts the TLS randomness of a new run of `seed` on this thread.
pub fn reseed(seed: u64) {
    WORLD.with_borrow_mut(|world| {
        *world = Some(StdRng::seed_from_u64(seed ^ 0x7153_6372_7970_746f));
    });
}

/// Fills `out` from the world's generator; fails (and the handshake with it) when no run
/// seeded it on this thread.
fn draw(out: &mut [u8]) -> Result<(), GetRandomFailed> {
    WORLD.with_borrow_mut(|world| {
        let rng = world.as_mut().ok_or(GetRandomFailed)?;
        rng.fill_bytes(out);
        Ok(())
    })
}

/// rustls's randomness, from the world's generator.
#[derive(Debug)]
struct WorldRandom;

impl SecureRandom for WorldRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        draw(buf)
    }
}

/// The simulator's key agreement. Each side's share is 32 bytes from the world's
/// generator and the shared secret is the two shares mixed (XOR), so both sides derive
/// the same keys from it. It keeps no secret from anyone — nothing in a simulation
/// needs one — and saves X25519's scalar multiplications: two per side, a third of a
/// handshake's instructions, and handshakes (eight at every node restart) were up to a
/// seventh of a run. Every message, size and state of the handshake stays rustls's and
/// quinn's own; only the arithmetic behind the key shares is left out. It announces
/// itself as X25519, the one group the nodes offer.
#[derive(Debug)]
struct WorldKx;

impl SupportedKxGroup for WorldKx {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut share = [0u8; SHARE_BYTES];
        draw(&mut share).map_err(|_| Error::FailedToGetRandomBytes)?;
        Ok(Box::new(WorldShare(share)))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// Length of a key share (an X25519 public key's).
const SHARE_BYTES: usize = 32;

/// One side's share of a handshake.
struct WorldShare([u8; SHARE_BYTES]);

impl ActiveKeyExchange for WorldShare {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; SHARE_BYTES] = peer
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let mut shared = [0u8; SHARE_BYTES];
        for (out, (ours, theirs)) in shared.iter_mut().zip(self.0.iter().zip(&peer)) {
            *out = ours ^ theirs;
        }
        // As X25519 refuses a share that contributes nothing: an all-zero secret.
        if shared == [0u8; SHARE_BYTES] || peer == [0u8; SHARE_BYTES] {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.0
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

static WORLD_RANDOM: WorldRandom = WorldRandom;
static WORLD_KX: WorldKx = WorldKx;
static WORLD_KEYS: crate::signatures::WorldKeys = crate::signatures::WorldKeys;

/// The mesh cryptography of a simulated node seeded with `node_seed`.
pub fn seeded(node_seed: u64, runtime: Runtime) -> MeshCrypto {
    let ring = rustls::crypto::ring::default_provider();
    // Every part of ring's provider, each replaced or wrapped for the simulation.
    let provider = CryptoProvider {
        // AES-128-GCM with its key schedule on the simulator's mix (ring prefers
        // AES-256 with SHA-384, whose hash was a twentieth of a 5 x 100 run in HKDF
        // alone; see `key_schedule`).
        cipher_suites: vec![crate::key_schedule::world_suite()],
        secure_random: &WORLD_RANDOM,
        kx_groups: vec![&WORLD_KX],
        signature_verification_algorithms: crate::signatures::verification(
            &ring.signature_verification_algorithms,
        ),
        key_provider: &WORLD_KEYS,
    };
    let initial = Mutex::new(SeededCids::initial(node_seed));
    MeshCrypto {
        provider: Arc::new(provider),
        time: Some(Arc::new(SimulatedTime(runtime))),
        token_key: Some(key_of(node_seed, 0x746f_6b65_6e00)),
        initial_cids: Some(Arc::new(move || {
            initial
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .generate_cid()
        })),
    }
}

/// TLS's clock in a simulation: the node's simulated wall clock (its runtime's, which
/// stands still while the node is suspended), so a resumed session's ticket age, which
/// the client's hello carries, is the same in every run of a seed. With the system clock
/// it followed the real time a run took: a node resumed from a suspension sent hellos
/// whose bytes differed from run to run, and a peer that misread one of them as a
/// connection attempt dropped it in some runs and refused it in others (seed 217 gave
/// two hashes).
#[derive(Debug)]
struct SimulatedTime(Runtime);

impl rustls::time_provider::TimeProvider for SimulatedTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        let now_ms = self.0.wall_clock_ms();
        Some(rustls::pki_types::UnixTime::since_unix_epoch(
            std::time::Duration::from_millis(now_ms),
        ))
    }
}

/// quinn's stateless-reset key of a node seeded with `node_seed` (tokens signed with the
/// simulator's mix: see `key_schedule`).
pub fn reset_key(node_seed: u64) -> Arc<crate::key_schedule::WorldResetKey> {
    crate::key_schedule::WorldResetKey::new(key_of(node_seed, 0x7265_7365_7400))
}

/// Length of the connection ids a simulated endpoint issues (quinn's default).
const CID_BYTES: usize = 8;
/// Length of a client's initial destination connection id (quinn's default: the most
/// QUIC allows).
const INITIAL_CID_BYTES: usize = 20;

/// Connection ids from a node's seed. quinn's own generators read the thread's
/// OS-seeded generator, and a connection id is what a QUIC endpoint derives a packet's
/// initial keys from: a stray packet would decode differently in every run.
pub struct SeededCids {
    rng: StdRng,
    len: usize,
}

impl SeededCids {
    /// The ids the endpoint of a node seeded with `node_seed` issues.
    pub fn issued(node_seed: u64) -> SeededCids {
        SeededCids {
            rng: StdRng::seed_from_u64(node_seed ^ 0x6369_6473_0000),
            len: CID_BYTES,
        }
    }

    /// The initial destination ids of that node's connection attempts.
    pub fn initial(node_seed: u64) -> SeededCids {
        SeededCids {
            rng: StdRng::seed_from_u64(node_seed ^ 0x6463_6964_0000),
            len: INITIAL_CID_BYTES,
        }
    }
}

impl quinn::ConnectionIdGenerator for SeededCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut bytes = [0u8; INITIAL_CID_BYTES];
        self.rng.fill_bytes(&mut bytes[..self.len]);
        quinn::ConnectionId::new(&bytes[..self.len])
    }

    fn cid_len(&self) -> usize {
        self.len
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// 32 bytes drawn from `node_seed` for one `purpose`.
fn key_of(node_seed: u64, purpose: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    StdRng::seed_from_u64(node_seed ^ purpose).fill_bytes(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reseeded_world_draws_the_same_bytes_and_key_shares_agree() {
        reseed(7);
        let mut first = [0u8; 16];
        draw(&mut first).unwrap();
        let client = WORLD_KX.start().unwrap();
        let server = WORLD_KX.start().unwrap();
        let client_pub = client.pub_key().to_vec();
        let server_pub = server.pub_key().to_vec();
        reseed(7);
        let mut again = [0u8; 16];
        draw(&mut again).unwrap();
        assert_eq!(first, again);
        assert_eq!(WORLD_KX.start().unwrap().pub_key(), &client_pub[..]);
        let a = client.complete(&server_pub).unwrap();
        let b = server.complete(&client_pub).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
        assert!(
            WORLD_KX.start().unwrap().complete(&[0u8; 32]).is_err(),
            "a non-contributory share is refused"
        );
    }

    #[test]
    fn a_nodes_connection_ids_and_keys_follow_its_seed() {
        let runtime = || Runtime::deterministic(0, crate::cluster::EPOCH_MS);
        let ids = |seed| {
            let mut cids = SeededCids::issued(seed);
            let initial = seeded(seed, runtime())
                .initial_cids
                .expect("seeded initial ids");
            (
                cids.generate_cid(),
                cids.generate_cid(),
                initial(),
                initial(),
            )
        };
        assert_eq!(ids(5), ids(5));
        assert_ne!(ids(5), ids(6));
        let (first, second, initial, _) = ids(5);
        assert_ne!(first, second, "each id is a new draw");
        assert_eq!(initial.len(), INITIAL_CID_BYTES);
        assert_eq!(
            seeded(5, runtime()).token_key,
            seeded(5, runtime()).token_key
        );
        assert_ne!(
            seeded(5, runtime()).token_key,
            seeded(6, runtime()).token_key
        );
    }
}
