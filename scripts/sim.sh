#!/usr/bin/env bash
# Deterministic cluster simulations, as CI runs them (docs/simulation.md):
#  1. fixed seeds: every invariant must hold, and each seed must replay identically;
#  2. fresh seeds (from the clock, printed so a finding can be replayed): invariant
#     findings and replay differences are reported, not fatal, until the open findings
#     and the known determinism gap listed in docs/simulation.md are closed (a fresh
#     seed, 281947007, differed between two runs in one process with the build from
#     before this change too).
# Longer sweep: cargo run -p flotilla-sim --release -- --seeds 1..1000
set -euo pipefail
cd "$(dirname "$0")/.."

fixed_seeds="1..41"
fresh_count="${SIM_FRESH_SEEDS:-8}"
fresh_from="${SIM_FRESH_FROM:-$(( $(date +%s) % 1000000 * 1000 ))}"

cargo build -p flotilla-sim --release --locked
sim=./target/release/flotilla-sim

echo "== simulation: fixed seeds ($fixed_seeds)"
"$sim" --seeds "$fixed_seeds" --check-determinism

echo "== simulation: $fresh_count fresh seeds from $fresh_from"
if ! "$sim" --seeds "$fresh_from..$((fresh_from + fresh_count))" --check-determinism --report-only; then
    echo "== fresh seeds from $fresh_from: a replay difference above (report-only; docs/simulation.md)"
fi
