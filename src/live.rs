//! A setting the node replaces when its config is reloaded.
//!
//! Readers take a snapshot (`get`: one uncontended read lock and an `Arc` clone) and use
//! it for the whole request, so a request never sees half of an old config and half of a
//! new one; the reload (`replace`) swaps the `Arc` under the write lock and never waits
//! on a reader for longer than that clone. Everything derived from the config that a
//! reload can change lives in one of these; what it cannot change is a plain value
//! (docs/runtime-semantics.md lists both).

use std::sync::{Arc, RwLock};

/// A shared, replaceable value.
#[derive(Debug)]
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T> Live<T> {
    /// A value every clone shares.
    pub fn new(value: T) -> Live<T> {
        Live(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value for every later `get`; snapshots already taken stay as they were.
    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_see_a_replacement_and_snapshots_do_not() {
        let live = Live::new(1);
        let other = live.clone();
        let snapshot = live.get();
        other.replace(2);
        assert_eq!(*live.get(), 2);
        assert_eq!(*snapshot, 1);
    }
}
