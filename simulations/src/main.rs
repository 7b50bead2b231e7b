//! `flotilla-sim`: runs deterministic cluster simulations.
//!
//! ```text
//! cargo run -p flotilla-sim --release -- --seed 7            # one run, replayable
//! cargo run -p flotilla-sim --release -- --seeds 1..200      # a sweep (or --seeds 2,4,9)
//! cargo run -p flotilla-sim --release -- --seeds 1..20 --check-determinism
//! cargo run -p flotilla-sim --release -- --seeds 1..200 --jobs 2   # two seeds at a time
//! cargo run -p flotilla-sim --release -- --seed 7 --sabotage double-capture
//! ```
//!
//! Exit status: 0 when every run kept every invariant (and replayed identically with
//! `--check-determinism`), 1 otherwise (with `--report-only`: only for a run that was
//! not deterministic or whose host failed), 2 for bad arguments.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use flotilla_cluster::ingest::sabotage::Sabotage;
use flotilla_sim::run::{Options, Outcome, run};
use flotilla_sim::sweep::{MAX_JOBS, sweep};

/// A simulated cluster allocates at every message, datagram and table row: with the
/// system allocator, allocation was a seventh of a run's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trace lines printed before a violation.
const TAIL_LINES: usize = 40;

/// Prints a line to stdout; a reader that went away (`flotilla-sim … | head`) ends the
/// program quietly, with the status a shell gives a process killed by SIGPIPE, instead
/// of a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

#[derive(Parser)]
#[command(
    name = "flotilla-sim",
    about = "Deterministic simulations of a flotilla cluster under faults"
)]
struct Args {
    /// One seed to run.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded), or a list, `2,4,9`.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<SeedList>,
    /// Run each seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Break one rule on purpose (no-failback, double-capture, ignore-stale, leak-node,
    /// blind-resume).
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
    /// Every node on one address, told apart by port (otherwise a quarter of the seeds
    /// draw that layout).
    #[arg(long)]
    shared_address: bool,
    /// Print the whole trace of each run.
    #[arg(long)]
    trace: bool,
    /// Seeds run side by side, one thread each (results are printed in seed order and do
    /// not depend on it). The speed line is then the sweep's throughput, not one run's.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Exit 0 despite invariant violations (still 1 for a non-deterministic seed or a
    /// host that failed): for sweeps of fresh seeds that report findings.
    #[arg(long)]
    report_only: bool,
}

/// Most seeds one invocation runs (a typo like `1..1000000000` must not hang CI).
const MAX_SEEDS: u64 = 100_000;

/// Seeds given on the command line.
#[derive(Debug, Clone)]
struct SeedList(Vec<u64>);

fn parse_seeds(text: &str) -> Result<SeedList, String> {
    let seed = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("{t:?} is not a seed"))
    };
    if let Some((from, to)) = text.split_once("..") {
        let (from, to) = (seed(from)?, seed(to)?);
        if to <= from || to - from > MAX_SEEDS {
            return Err(format!("the range {text} must hold 1 to {MAX_SEEDS} seeds"));
        }
        return Ok(SeedList((from..to).collect()));
    }
    let seeds = text
        .split(',')
        .map(seed)
        .collect::<Result<Vec<u64>, String>>()?;
    if seeds.is_empty() || seeds.len() as u64 > MAX_SEEDS {
        return Err(format!("give 1 to {MAX_SEEDS} seeds"));
    }
    Ok(SeedList(seeds))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // FLOTILLA_SIM_LOG=<filter> logs the nodes' tracing events to stderr, without
    // wall-clock times, so the logs of two runs of one seed can be diffed line by line.
    if let Ok(filter) = std::env::var("FLOTILLA_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .without_time()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
    if !(2..=32).contains(&args.nodes) || !(1..=1_000).contains(&args.streams) {
        eprintln!("flotilla-sim: --nodes must be 2..=32 and --streams 1..=1000");
        return ExitCode::from(2);
    }
    if !(1..=MAX_JOBS).contains(&args.jobs) {
        eprintln!("flotilla-sim: --jobs must be 1..={MAX_JOBS}");
        return ExitCode::from(2);
    }
    let seeds = match (args.seed, args.seeds) {
        (Some(seed), _) => vec![seed],
        (None, Some(SeedList(seeds))) => seeds,
        (None, None) => vec![1],
    };
    // Real time, only to report the simulation's speed; nothing simulated reads it.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut simulated_ms = 0u64;
    let mut failures = 0u32;
    let mut broken = 0u32;
    let runs = seeds.len();
    let options = |seed| Options {
        seed,
        nodes: args.nodes,
        streams: args.streams,
        chaos_ms: args.chaos_secs * 1_000,
        heal_ms: args.heal_secs * 1_000,
        sabotage: args.sabotage,
        shared_address: args.shared_address,
    };
    let check_determinism = args.check_determinism;
    sweep(
        &seeds,
        args.jobs,
        |seed| {
            let outcome = run(&options(*seed));
            let again = check_determinism.then(|| run(&options(*seed)));
            (outcome, again)
        },
        |(outcome, again)| {
            simulated_ms += outcome.simulated_ms;
            if args.trace {
                say!("{}", outcome.header);
                for line in &outcome.trace {
                    say!("{line}");
                }
            }
            let mut failed = report(&outcome);
            // A host error is a broken simulation, not a finding.
            let mut hard = outcome.violations.iter().any(|v| v.invariant == "host");
            if let Some(again) = again {
                simulated_ms += again.simulated_ms;
                if again.hash != outcome.hash {
                    failed = true;
                    hard = true;
                    say!(
                        "SEED={} NOT DETERMINISTIC: trace hashes {:016x} and {:016x}",
                        outcome.seed,
                        outcome.hash,
                        again.hash
                    );
                    print_divergence(&outcome, &again);
                }
            }
            failures += u32::from(failed);
            broken += u32::from(hard);
        },
    );
    let wall = started.elapsed().as_secs_f64();
    say!(
        "{runs} run(s), {failures} failed; {:.0} simulated s in {wall:.1} s of wall clock ({:.0}× real time)",
        simulated_ms as f64 / 1000.0,
        simulated_ms as f64 / 1000.0 / wall.max(1e-9)
    );
    if failures == 0 || (args.report_only && broken == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints the run's one-line result, and the violation with the trace's tail.
fn report(outcome: &Outcome) -> bool {
    match &outcome.violation {
        None => {
            say!("{} ok hash={:016x}", outcome.header, outcome.hash);
            false
        }
        Some(violation) => {
            say!("{} FAILED hash={:016x}", outcome.header, outcome.hash);
            say!("  {violation}");
            for other in outcome.violations.iter().skip(1) {
                say!("  then: {other}");
            }
            say!(
                "  replay: cargo run -p flotilla-sim --release -- --seed {} --trace",
                outcome.seed
            );
            let from = outcome.trace.len().saturating_sub(TAIL_LINES);
            for line in &outcome.trace[from..] {
                say!("  | {line}");
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
    say!("  first difference at trace line {first}:");
    say!("  | {}", a.trace.get(first).map_or("<end>", String::as_str));
    say!("  | {}", b.trace.get(first).map_or("<end>", String::as_str));
}
