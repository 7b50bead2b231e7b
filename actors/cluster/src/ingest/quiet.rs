//! When a step of the book would change nothing: the coordinator ticks every few hundred
//! milliseconds, and with hundreds of streams a full step (placement of every stream,
//! the ownership table) is its whole cost; yet most ticks see exactly the cluster the
//! last one saw. A step is a pure function of its input, the book's state and `now`,
//! so on an unchanged input the only thing that can make it decide differently is
//! time: a hold ending, a deadline passing. The book notes the earliest such moment
//! while it steps ([`Wake`]), and [`QuietWatch`] lets the next ticks pass without a
//! step until either the input changes or that moment comes.
//!
//! A step on an input it has not seen may still settle state the next step on the same
//! input reads (a capture's first health, a hand-over's start), so ticks are only let
//! pass after a step that did nothing and either left the book's state as it found it
//! (compared by hash, see `IngestBook::decision_state_hash`: the next step is then the
//! same function of the same arguments) or was the second on the same input.
//! Skipping is exact, not approximate: the tests run books that skip against books
//! that step every tick and require the same actions and tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::book::{Configured, Health, Member, StepInput};

/// The earliest time after `now` at which a time rule of the step could decide
/// differently on the same input.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wake {
    now_ms: u64,
    earliest_ms: u64,
}

impl Wake {
    /// Nothing due yet, as of `now_ms`.
    pub(super) fn after(now_ms: u64) -> Wake {
        Wake {
            now_ms,
            earliest_ms: u64::MAX,
        }
    }

    /// A rule compares `now` with `when_ms`: its answer may change there.
    pub(super) fn at(&mut self, when_ms: u64) {
        if when_ms > self.now_ms {
            self.earliest_ms = self.earliest_ms.min(when_ms);
        }
    }

    /// The earliest moment noted.
    pub(super) fn earliest_ms(&self) -> u64 {
        self.earliest_ms
    }
}

/// A fast, non-cryptographic 64-bit hasher for [`IngestBook`](super::book::IngestBook)'s
/// decision state (hashed twice per step: std's SipHash cost a tenth of the step).
/// Each word goes through a rotate, a xor and a multiplication by an odd constant, a
/// bijection of the running hash for a given word: two states that differ in one word
/// always hash differently; other differences collide with a chance of about 2^-64.
#[derive(Debug, Default)]
pub(super) struct StateHasher(u64);

impl StateHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn word(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for StateHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        // The length keeps "ab" + "" apart from "a" + "b".
        self.word(u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u8(&mut self, value: u8) {
        self.word(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.word(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.word(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.word(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The input of the last step: its shared parts are held, so an unchanged part is the
/// very allocation of the next input and compares by address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LastInput {
    me: Arc<Member>,
    peers: Arc<[Member]>,
    cluster_size: usize,
    peers_unheard: usize,
    peers_fading: usize,
    peers_unconfirmed: usize,
    streams: Arc<[Configured]>,
    health: Arc<BTreeMap<String, Health>>,
}

/// The same shared value: the same allocation, or an equal one.
fn same<T: PartialEq + ?Sized>(held: &Arc<T>, given: &Arc<T>) -> bool {
    Arc::ptr_eq(held, given) || **held == **given
}

impl LastInput {
    fn of(input: &StepInput<'_>) -> LastInput {
        LastInput {
            me: input.me.clone(),
            peers: input.peers.clone(),
            cluster_size: input.cluster_size,
            peers_unheard: input.peers_unheard,
            peers_fading: input.peers_fading,
            peers_unconfirmed: input.peers_unconfirmed,
            streams: input.streams.clone(),
            health: input.health.clone(),
        }
    }

    /// Everything but `now` is the same, the counts of the cluster's nodes too unless
    /// the step does not read them (`counts`); the unconfirmed peers always (the step
    /// takes nothing while there are any). Peers' stream maps are shared too, so even
    /// an equal copy of the peers compares their maps by address.
    fn matches(&self, input: &StepInput<'_>, counts: Counts) -> bool {
        self.peers_unconfirmed == input.peers_unconfirmed
            && (counts == Counts::Ignored
                || (self.cluster_size == input.cluster_size
                    && self.peers_unheard == input.peers_unheard
                    && self.peers_fading == input.peers_fading))
            && same(&self.me, input.me)
            && same(&self.peers, input.peers)
            && same(&self.health, input.health)
            && same(&self.streams, input.streams)
    }
}

/// Whether a step reads the counts of the cluster's nodes (its size, the peers unheard
/// and fading): only to settle at start-up and for minority restraint. A settled book
/// without restraint decides the same whatever they are, so a peer that fades for a
/// moment (heard a little late) costs no step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counts {
    Read,
    Ignored,
}

/// What the book knows of its last steps, to let unchanged ticks pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct QuietWatch {
    last: Option<LastInput>,
    /// Steps in a row on `last`.
    steps_on_last: u32,
    /// The last step started or stopped nothing.
    calm: bool,
    /// The last step left the book's state as it found it.
    kept_state: bool,
    /// The last step's [`Wake`].
    wake_ms: u64,
}

impl QuietWatch {
    /// A step on `input` just ran.
    pub(super) fn stepped(
        &mut self,
        input: &StepInput<'_>,
        counts: Counts,
        calm: bool,
        kept_state: bool,
        wake: Wake,
    ) {
        match &mut self.last {
            Some(last) if last.matches(input, counts) => {
                self.steps_on_last = self.steps_on_last.saturating_add(1);
            }
            last => {
                *last = Some(LastInput::of(input));
                self.steps_on_last = 1;
            }
        }
        self.calm = calm;
        self.kept_state = kept_state;
        self.wake_ms = wake.earliest_ms();
    }

    /// Whether a step on `input` would change nothing but the liveness times the book
    /// refreshes in [`IngestBook::idle`](super::book::IngestBook).
    pub(super) fn holds(&self, input: &StepInput<'_>, counts: Counts) -> bool {
        (self.steps_on_last >= 2 || (self.steps_on_last == 1 && self.kept_state))
            && self.calm
            && input.now_ms < self.wake_ms
            && self
                .last
                .as_ref()
                .is_some_and(|last| last.matches(input, counts))
    }

    /// The book changed outside a step (a start that failed, a capture adopted): the
    /// next tick steps.
    pub(super) fn reset(&mut self) {
        *self = QuietWatch::default();
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{Hash, Hasher};

    use proptest::prelude::*;

    use super::StateHasher;

    fn hash_of(value: impl Hash) -> u64 {
        let mut hasher = StateHasher::default();
        value.hash(&mut hasher);
        hasher.finish()
    }

    proptest! {
        /// Equal values hash equal; a value changed in one word, or text split
        /// differently, hashes differently.
        #[test]
        fn one_changed_word_always_changes_the_hash(
            words in proptest::collection::vec(any::<u64>(), 1..20),
            at in any::<prop::sample::Index>(),
            delta in 1u64..,
            text in "[a-z]{0,20}",
            split in any::<prop::sample::Index>(),
        ) {
            prop_assert_eq!(hash_of(&words), hash_of(words.clone()));
            let mut changed = words.clone();
            let index = at.index(words.len());
            changed[index] = changed[index].wrapping_add(delta);
            prop_assert_ne!(hash_of(&words), hash_of(&changed));
            let cut = split.index(text.len().max(1));
            if cut > 0 {
                let (a, b) = text.split_at(cut);
                prop_assert_ne!(hash_of((a, b)), hash_of((&text, "")));
            }
        }
    }
}
