#!/usr/bin/env bash
# LL-HLS figures (docs/benchmarks.md):
# 1. latency in Chromium: hls.js (the node's embedded build) in low-latency mode plays an
#    RTMP publish by ffmpeg (1 s segments, 200 ms parts) for DURATION_S; the playhead's
#    distance from the live edge and from the wall clock (the program date of the frame
#    on screen is when it reached the node), median and p95 — the ignored test
#    `llhls_latency_in_chromium` in tests/browser_cmaf.rs;
# 2. VIEWERS LL-HLS viewers on one node (`flotilla bench --protocol llhls`, node and load
#    generator in one process, the built-in test stream with 1 s segments and 200 ms
#    parts): each viewer holds a blocking playlist reload and the hinted part; the part
#    latency is how long after the first viewer to get a part each viewer gets it.
#
#   apt-get install -y chromium ffmpeg npm
#   scripts/bench-llhls.sh [DURATION_S] [VIEWERS]     # defaults: 60 s, 10000
#
# Environment: FLOTILLA=PATH runs that binary for the viewers' run instead of building
# `--profile lto`. The load generator shares the machine's cores with the node.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-60}"
VIEWERS="${2:-10000}"
echo "== latency in Chromium ($DURATION s)"
FLOTILLA_BENCH_SECONDS="$DURATION" cargo test --release --quiet --test browser_cmaf \
    -- --ignored --exact llhls_latency_in_chromium --nocapture 2>&1 | grep -E "llhls_latency|panicked|error" || true
if [ -n "${FLOTILLA:-}" ]; then
    BIN="$FLOTILLA"
else
    cargo build --profile lto --quiet --bin flotilla
    BIN=target/lto/flotilla
fi
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "== $VIEWERS LL-HLS viewers ($DURATION s, 30 s ramp)"
"$BIN" bench --protocol llhls --viewers "$VIEWERS" --duration "$DURATION" --ramp 30
