#!/usr/bin/env bash
# Time `flotilla check-config` on large generated configs (issue 30.10: it was quadratic).
#
#   scripts/bench-check-config.sh [BINARY]        # default: target/release/flotilla
#
# Builds the release binary unless BINARY is given (a fresh fat-LTO build takes ~5 min on
# 2 cores). Two kinds of files, at 10,000, 40,000 and 200,000 lines (the 16 MiB file limit
# allows about 500,000 such lines):
#   streams-N: `stream sI { input test://; }` per line, a valid config;
#   errors-N:  `bogus_directive_I on;` per line, one error each (an unknown directive, for
#              which "did you mean" is searched).
# Each file is checked once, with stdout and stderr discarded; a run is cut at 120 s.
# Linear work shows as 4x from 10k to 40k and 5x from 40k to 200k.
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY="${1:-}"
if [[ -z "$BINARY" ]]; then
    cargo build --release --locked --quiet --bin flotilla
    BINARY=target/release/flotilla
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# A run longer than this is reported as cut (the issue's 200k file never finished).
CUT_S=120

for lines in 10000 40000 200000; do
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "stream s%d { input test://; }\n", i }' \
        > "$WORK/streams-$lines.conf"
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "bogus_directive_%d on;\n", i }' \
        > "$WORK/errors-$lines.conf"
done

printf '%-14s %10s %8s\n' file bytes seconds
for kind in streams errors; do
    for lines in 10000 40000 200000; do
        file="$WORK/$kind-$lines.conf"
        start=$(date +%s.%N)
        status=0
        timeout "$CUT_S" "$BINARY" check-config "$file" >/dev/null 2>&1 || status=$?
        end=$(date +%s.%N)
        seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
        if [[ $status -eq 124 ]]; then seconds=">$CUT_S (cut)"; fi
        printf '%-14s %10d %8s\n' "$kind-$lines" "$(stat -c %s "$file")" "$seconds"
    done
done
