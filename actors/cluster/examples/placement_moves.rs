//! Streams moved by cluster_ingest placement when one node leaves or joins, against the
//! minimum (the streams of the node that left, or the share the newcomer must take).
//!
//! `cargo run --release -p flotilla-cluster --example placement_moves`

use std::collections::BTreeMap;

use flotilla_cluster::ingest::placement::{Candidate, IngestStream, Reason, place};

fn nodes(count: usize) -> Vec<Candidate> {
    (0..count)
        .map(|i| Candidate {
            name: format!("node-{i:02}"),
            healthy_since_ms: 0,
            channel_limit: None,
            over_cpu_limit: false,
        })
        .collect()
}

fn streams(count: usize) -> Vec<IngestStream<'static>> {
    (0..count)
        .map(|i| IngestStream {
            name: format!("cam{i:05}").into(),
            capture_at: None,
            excluded: Vec::new(),
            captured_by: None,
            flowing_at: None,
        })
        .collect()
}

/// The streams as captured according to `placement` (what the cluster view carries).
fn captured<'a>(
    list: &[IngestStream<'a>],
    placement: &BTreeMap<String, (String, Reason)>,
) -> Vec<IngestStream<'a>> {
    list.iter()
        .map(|s| IngestStream {
            captured_by: placement
                .get(s.name.as_ref())
                .map(|(n, _)| n.clone().into()),
            flowing_at: placement
                .get(s.name.as_ref())
                .map(|(n, _)| n.clone().into()),
            ..s.clone()
        })
        .collect()
}

fn moved(
    before: &BTreeMap<String, (String, Reason)>,
    after: &BTreeMap<String, (String, Reason)>,
) -> usize {
    before
        .iter()
        .filter(|(stream, (node, _))| after.get(*stream).map(|(n, _)| n) != Some(node))
        .count()
}

/// Moves above the minimum, percent.
fn extra(moved: usize, minimum: usize) -> f64 {
    if minimum == 0 {
        if moved == 0 { 0.0 } else { f64::INFINITY }
    } else {
        100.0 * (moved as f64 / minimum as f64 - 1.0)
    }
}

fn main() {
    println!(
        "nodes streams | load min..max | leave: moved/minimum (avg over each node leaving) | join: moved/minimum"
    );
    for node_count in [3, 5, 10, 20] {
        for stream_count in [9, 100, 1_000] {
            let all = nodes(node_count);
            let list = streams(stream_count);
            let full = place(&list, &all, 0, 0);
            let (mut leave_moved, mut leave_min, mut join_moved, mut join_min) = (0, 0, 0, 0);
            for gone in 0..node_count {
                let rest: Vec<Candidate> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != gone)
                    .map(|(_, n)| n.clone())
                    .collect();
                let without = place(&captured(&list, &full), &rest, 0, 0);
                leave_moved += moved(&full, &without);
                leave_min += full.values().filter(|(n, _)| *n == all[gone].name).count();
                // The node comes back: the minimum is the share it must take again.
                let back = place(&captured(&list, &without), &all, 0, 0);
                join_moved += moved(&without, &back);
                join_min += stream_count / node_count;
            }
            let avg = |x: usize| x as f64 / node_count as f64;
            let mut loads: BTreeMap<&str, usize> = BTreeMap::new();
            for (node, _) in full.values() {
                *loads.entry(node.as_str()).or_default() += 1;
            }
            let most = loads.values().max().copied().unwrap_or(0);
            let least = if loads.len() < node_count {
                0
            } else {
                loads.values().min().copied().unwrap_or(0)
            };
            println!(
                "{node_count:>5} {stream_count:>7} | {least:>4}..{most:<4} | {:>7.1} / {:>7.1} ({:+.1}%) | {:>7.1} / {:>7.1} ({:+.1}%)",
                avg(leave_moved),
                avg(leave_min),
                extra(leave_moved, leave_min),
                avg(join_moved),
                avg(join_min),
                extra(join_moved, join_min),
            );
        }
    }
}
