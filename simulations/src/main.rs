//! `flotilla-sim`: runs deterministic cluster simulations.
//!
//! ```text
//! cargo run -p flotilla-sim --release -- --seed 7            # one run, replayable
//! cargo run -p flotilla-sim --release -- --seeds 1..200      # a sweep
//! cargo run -p flotilla-sim --release -- --seeds 1..20 --check-determinism
//! cargo run -p flotilla-sim --release -- --seed 7 --sabotage double-capture
//! ```
//!
//! Exit status: 0 when every run kept every invariant (and replayed identically with
//! `--check-determinism`), 1 otherwise, 2 for bad arguments.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use flotilla_actors::ingest::sabotage::Sabotage;
use flotilla_sim::run::{Options, Outcome, run};

/// Trace lines printed before a violation.
const TAIL_LINES: usize = 40;

#[derive(Parser)]
#[command(name = "flotilla-sim", about = "Deterministic simulations of a flotilla cluster under faults")]
struct Args {
    /// One seed to run.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Run each seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Break one rule on purpose (no-failback, double-capture, ignore-stale).
    #[arg(long)]
    sabotage: Option<Sabotage>,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// cluster_ingest streams.
    #[arg(long, default_value_t = 20)]
    streams: usize,
    /// Seconds of chaos.
    #[arg(long, default_value_t = 90)]
    chaos_secs: u64,
    /// Seconds of heal.
    #[arg(long, default_value_t = 100)]
    heal_secs: u64,
    /// Print the whole trace of each run.
    #[arg(long)]
    trace: bool,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range A..B"))?;
    let from: u64 = from.parse().map_err(|_| format!("{from:?} is not a seed"))?;
    let to: u64 = to.parse().map_err(|_| format!("{to:?} is not a seed"))?;
    if to <= from {
        return Err(format!("the range {text} is empty"));
    }
    Ok((from, to))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(2..=32).contains(&args.nodes) || !(1..=1_000).contains(&args.streams) {
        eprintln!("flotilla-sim: --nodes must be 2..=32 and --streams 1..=1000");
        return ExitCode::from(2);
    }
    let seeds = match (args.seed, args.seeds) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some((from, to))) => from..to,
        (None, None) => 1..2,
    };
    let started = Instant::now();
    let mut simulated_ms = 0u64;
    let mut failures = 0u32;
    let runs = seeds.end - seeds.start;
    for seed in seeds {
        let options = Options {
            seed,
            nodes: args.nodes,
            streams: args.streams,
            chaos_ms: args.chaos_secs * 1_000,
            heal_ms: args.heal_secs * 1_000,
            sabotage: args.sabotage,
        };
        let outcome = run(&options);
        simulated_ms += outcome.simulated_ms;
        if args.trace {
            println!("{}", outcome.header);
            for line in &outcome.trace {
                println!("{line}");
            }
        }
        let mut failed = report(&outcome);
        if args.check_determinism {
            let again = run(&options);
            simulated_ms += again.simulated_ms;
            if again.hash != outcome.hash {
                failed = true;
                println!(
                    "SEED={seed} NOT DETERMINISTIC: trace hashes {:016x} and {:016x}",
                    outcome.hash, again.hash
                );
                print_divergence(&outcome, &again);
            }
        }
        failures += u32::from(failed);
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{runs} run(s), {failures} failed; {:.0} simulated s in {wall:.1} s of wall clock ({:.0}× real time)",
        simulated_ms as f64 / 1000.0,
        simulated_ms as f64 / 1000.0 / wall.max(1e-9)
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints the run's one-line result, and the violation with the trace's tail.
fn report(outcome: &Outcome) -> bool {
    match &outcome.violation {
        None => {
            println!("{} ok hash={:016x}", outcome.header, outcome.hash);
            false
        }
        Some(violation) => {
            println!("{} FAILED hash={:016x}", outcome.header, outcome.hash);
            println!("  {violation}");
            for other in outcome.violations.iter().skip(1) {
                println!("  then: {other}");
            }
            println!("  replay: cargo run -p flotilla-sim --release -- --seed {} --trace", outcome.seed);
            let from = outcome.trace.len().saturating_sub(TAIL_LINES);
            for line in &outcome.trace[from..] {
                println!("  | {line}");
            }
            true
        }
    }
}

/// Prints where two traces of one seed first differ.
fn print_divergence(a: &Outcome, b: &Outcome) {
    let first = a
        .trace
        .iter()
        .zip(&b.trace)
        .position(|(x, y)| x != y)
        .unwrap_or(a.trace.len().min(b.trace.len()));
    println!("  first difference at trace line {first}:");
    println!("  | {}", a.trace.get(first).map_or("<end>", String::as_str));
    println!("  | {}", b.trace.get(first).map_or("<end>", String::as_str));
}
