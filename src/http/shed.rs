//! Connections that have not made a request yet, oldest first, for shedding.
//!
//! A node out of file descriptors cannot accept, so it answers nobody, while the sockets
//! holding the descriptors may be silent ones that will never send a request (issue 30.7:
//! 1,100 of them locked out a node limited to 1,024). Deadlines close those in seconds;
//! shedding answers at once: when `accept` fails for want of descriptors, the listener
//! closes the connection that has waited longest without a request and accepts again.
//! A client that sends its request promptly leaves this table in milliseconds, so it is
//! never the oldest; the one shed is the likeliest to be idle or hostile.
//!
//! A connection is in the table from its accept until its first request reaches the
//! router (HTTP/1 or 2, through hyper) — connections still in the balancer lane stay in
//! it between redirects, like an idle keep-alive connection nginx would reuse first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The connections of one listener that have made no request yet.
#[derive(Debug, Clone, Default)]
pub struct Openings {
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// By id, which grows with every accept: the first entry is the oldest.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// A connection's place in the table; dropping it (its first request, or its end)
/// takes it out.
#[derive(Debug)]
pub struct Waiting {
    id: u64,
    table: Arc<Mutex<Table>>,
}

/// Resolves when the connection is shed: it must close. Never resolves once the
/// connection has left the table.
#[derive(Debug)]
pub struct Shed(Option<oneshot::Receiver<()>>);

impl Openings {
    /// Enters a just-accepted connection.
    pub fn register(&self) -> (Waiting, Shed) {
        let (shed, signal) = oneshot::channel();
        let mut table = self.lock();
        let id = table.next_id;
        table.next_id += 1;
        table.waiting.insert(id, shed);
        (
            Waiting {
                id,
                table: self.table.clone(),
            },
            Shed(Some(signal)),
        )
    }

    /// Tells the oldest connection without a request to close; false when there is none
    /// (one whose task is ending already is passed over: closing it frees nothing more).
    pub fn shed_oldest(&self) -> bool {
        let mut table = self.lock();
        while let Some((_, shed)) = table.waiting.pop_first() {
            if shed.send(()).is_ok() {
                return true;
            }
        }
        false
    }

    /// How many connections have made no request yet.
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        lock(&self.table)
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    // A poisoned lock only means a connection task panicked; the table is still whole.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(&self.table).waiting.remove(&self.id);
    }
}

impl Shed {
    /// Waits until the connection is shed (may be called again after it returned or
    /// was cancelled; once the answer is known it is kept).
    pub async fn shed(&mut self) {
        if let Some(signal) = self.0.as_mut() {
            let shed = signal.await.is_ok();
            self.0 = None;
            if shed {
                return;
            }
        }
        // Out of the table (or shed before and told so): nothing more will come.
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn the_oldest_connection_without_a_request_is_shed_first() {
        let openings = Openings::default();
        let (first, mut first_shed) = openings.register();
        let (_second, mut second_shed) = openings.register();
        let (third, mut third_shed) = openings.register();
        assert_eq!(openings.len(), 3);
        // The first made its request: it is no longer a candidate.
        drop(first);
        assert_eq!(openings.len(), 2);
        assert!(first_shed.shed().now_or_never().is_none(), "never shed");

        assert!(openings.shed_oldest());
        assert!(
            second_shed.shed().now_or_never().is_some(),
            "the oldest left"
        );
        assert!(third_shed.shed().now_or_never().is_none());
        assert_eq!(openings.len(), 1);

        // A connection that ended meanwhile cannot be shed: nothing is freed by it.
        drop(third_shed);
        assert!(!openings.shed_oldest());
        drop(third);
        assert!(openings.is_empty());
        assert!(!openings.shed_oldest());
    }
}
