//! The simulator's one keyed mixing function, for what real cryptography would hash.
//!
//! The simulated mesh runs every handshake message and state of rustls and quinn, but
//! the arithmetic behind them costs a simulation time and proves nothing it asks about
//! (`crypto`, `signatures`, `key_schedule`). Where a node would use SHA-256, HMAC or an
//! Ed25519 signature, a simulated node uses [`mix`]: deterministic, fast, and different
//! for different inputs with overwhelming likelihood, so that a transcript, a label or
//! a key that differs still yields a different result. It keeps no secret from anyone.

/// Length of a mix (SHA-256's output length, so it fits wherever a hash did).
pub const MIX_BYTES: usize = 32;

/// Each lane's odd multiplier (and starting value).
const LANE_CONSTANTS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
];

/// Mixes `parts` in order: four 64-bit lanes, each fed every 8-byte word of every part
/// (and each part's length, so that parts split differently mix differently) through a
/// rotate, a xor and a multiplication by its own odd constant, then folded together so
/// that each output word depends on every lane. A changed word changes every lane.
pub fn mix(parts: &[&[u8]]) -> [u8; MIX_BYTES] {
    let mut lanes = LANE_CONSTANTS;
    let mut feed = |word: u64| {
        for (lane, constant) in lanes.iter_mut().zip(LANE_CONSTANTS) {
            *lane = (lane.rotate_left(23) ^ word).wrapping_mul(constant);
        }
    };
    for part in parts {
        let mut chunks = part.chunks_exact(8);
        for chunk in &mut chunks {
            feed(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        feed(u64::from_le_bytes(tail) ^ ((part.len() as u64) << 48));
    }
    let mut out = [0u8; MIX_BYTES];
    for (index, slot) in out.chunks_exact_mut(8).enumerate() {
        let folded = lanes
            .iter()
            .enumerate()
            .fold(0u64, |acc, (lane_index, lane)| {
                acc ^ lane.rotate_left(((index + lane_index) * 17) as u32)
            })
            .wrapping_mul(LANE_CONSTANTS[index]);
        slot.copy_from_slice(&folded.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Equal parts mix equal; one changed byte, one byte more, or the same bytes
        /// split into parts differently, mix differently.
        #[test]
        fn a_changed_byte_or_split_changes_the_mix(
            bytes in proptest::collection::vec(any::<u8>(), 1..100),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
            split in any::<prop::sample::Index>(),
        ) {
            prop_assert_eq!(mix(&[&bytes]), mix(&[&bytes.clone()]));
            let mut changed = bytes.clone();
            let index = at.index(bytes.len());
            changed[index] ^= flip;
            prop_assert_ne!(mix(&[&bytes]), mix(&[&changed]));
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_ne!(mix(&[&bytes]), mix(&[&longer]));
            let cut = split.index(bytes.len());
            let (a, b) = bytes.split_at(cut);
            prop_assert_ne!(mix(&[a, b]), mix(&[&bytes, &[]]));
        }
    }
}
