//! Node identity is `host:port` (issue #31, item 8): three nodes on one address, all
//! with the hostname `box`, told apart by their ports alone, keep every invariant
//! under the faults of their seed: each stream captured once, `capture_at` honoured by
//! port, owners agreed. Before, they took each other for themselves.

use flotilla_sim::run::{Options, run};

#[test]
fn three_nodes_on_one_address_keep_every_invariant() {
    for seed in [2, 5] {
        let outcome = run(&Options {
            nodes: 3,
            streams: 9,
            shared_address: true,
            ..Options::seed(seed)
        });
        assert!(
            outcome.violations.is_empty(),
            "seed {seed} on one address: {:?}",
            outcome.violations
        );
        for port in 8081..=8083 {
            let up = format!("box:{port} up");
            assert!(
                outcome.trace.iter().any(|line| line.ends_with(&up)),
                "seed {seed}: no `{up}` in the trace"
            );
        }
        assert!(
            outcome.header.contains("layout=shared-address"),
            "{}",
            outcome.header
        );
    }
}
