#!/usr/bin/env bash
# Redirects per second of a flotilla balancer (GeoIP lookup + mode decision + 302) against
# HAProxy answering a plain `http-request redirect`, with the same wrk command.
#
#   apt-get install -y wrk haproxy      # Debian packages
#   scripts/bench-balancer.sh [DURATION_S] [CONNECTIONS] [ROUNDS]
#
# wrk shares the two cores with the server under test, so one run of each swings by
# ±15 % with whatever else the machine does. The runs are therefore paired: each round
# measures both servers back to back (in alternating order), and the summary is the
# median of the per-round ratios.
#
# Four flotilla nodes on loopback (a balancer on 127.0.0.1 and three servers, meshed),
# HAProxy on 127.0.0.1 too; wrk with 2 threads. Both answer every request with a 302.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
CONNECTIONS="${2:-64}"
ROUNDS="${3:-1}"
PORT=18480
HAPROXY_PORT=18499
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --profile lto --quiet --bin flotilla --example geoip_fixture
target/lto/examples/geoip_fixture "$WORK/countries.mmdb" >/dev/null

cat > "$WORK/flotilla.conf" <<CONF
cluster_key bench-cluster-key-0123456789abcdef;
loglevel error;
geoip $WORK/countries.mmdb;
trusted_proxies 127.0.0.1;
peer 127.0.0.1:$PORT { fetch_timeout 1000; stale_timeout 3000; }
peer 127.0.0.2:$PORT { fetch_timeout 1000; stale_timeout 3000; }
peer 127.0.0.3:$PORT { fetch_timeout 1000; stale_timeout 3000; }
peer 127.0.0.4:$PORT { fetch_timeout 1000; stale_timeout 3000; }
balancer lb {
  mode clients;
  server 127.0.0.2:$PORT countries=CN;
  server 127.0.0.3:$PORT countries=RU,CN;
  server 127.0.0.4:$PORT countries_default=true;
}
CONF
for index in 1 2 3 4; do
    mkdir -p "$WORK/n$index/flotilla.conf.d"
    cp "$WORK/flotilla.conf" "$WORK/n$index/flotilla.conf"
    echo "http 127.0.0.$index:$PORT;" > "$WORK/n$index/flotilla.conf.d/listen.conf"
    target/lto/flotilla run -c "$WORK/n$index/flotilla.conf" --hostname "n$index" \
        >"$WORK/n$index.log" 2>&1 &
    PIDS+=($!)
done
BALANCER_PID="${PIDS[0]}"

# Wait until the balancer sees its three servers up.
for _ in $(seq 1 100); do
    up=$(curl -s "http://127.0.0.1:$PORT/streamer/api/v3/cluster/balancers/lb" | grep -o '"state":"up"' | wc -l || true)
    [ "$up" = "3" ] && break
    sleep 0.2
done
[ "$up" = "3" ] || { echo "servers not up"; cat "$WORK"/n1.log; exit 1; }

cat > "$WORK/haproxy.cfg" <<CFG
global
    maxconn 4096
    nbthread ${HAPROXY_THREADS:-2}
defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
frontend redirect
    bind 127.0.0.1:$HAPROXY_PORT
    http-request redirect location http://127.0.0.2:$PORT/news/index.m3u8 code 302
CFG
haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
PIDS+=($!)
HAPROXY_PID=$!
sleep 0.5

echo "location check:"
curl -s -o /dev/null -w "  flotilla: %{http_code} %{redirect_url}\n" -H "X-Forwarded-For: 192.0.2.7" \
    "http://127.0.0.1:$PORT/lb/news/index.m3u8?token=t"
curl -s -o /dev/null -w "  haproxy:  %{http_code} %{redirect_url}\n" \
    "http://127.0.0.1:$HAPROXY_PORT/lb/news/index.m3u8?token=t"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
    local label="$1" url="$2" pid="$3"; shift 3
    echo "== $label"
    local before after out requests
    before=$(cpu_ticks "$pid")
    # PERF_OUT=FILE records a profile of flotilla's run (perf record, call graphs).
    if [ -n "${PERF_OUT:-}" ] && [ "$pid" = "$BALANCER_PID" ]; then
        perf record -q -F 999 -g -p "$pid" -o "$PERF_OUT" -- sleep "$DURATION" 2>/dev/null &
    fi
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")
    after=$(cpu_ticks "$pid")
    echo "$out" | grep -E "Requests/sec|Latency|99%|Non-2xx|requests in"
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    # CPU time of the server process per request (clock ticks are 1/100 s).
    echo "   server CPU: $(( (after - before) * 10 )) ms for $requests requests = $(( (after - before) * 10000000 / requests )) ns/request"
    echo "   RSS after: $(awk '/VmRSS/ {print $2 " kB"}' "/proc/$pid/status")"
}
RATIOS=()
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
for round in $(seq 1 "$ROUNDS"); do
    flotilla() {
        run "flotilla balancer (GeoIP + clients mode + 302), round $round" \
            "http://127.0.0.1:$PORT/lb/news/index.m3u8?token=t" "$BALANCER_PID" \
            -H "X-Forwarded-For: 198.51.100.7"
    }
    haproxy() {
        run "haproxy http-request redirect, round $round" \
            "http://127.0.0.1:$HAPROXY_PORT/lb/news/index.m3u8?token=t" "$HAPROXY_PID" \
            -H "X-Forwarded-For: 198.51.100.7"
    }
    if [ $((round % 2)) = 1 ]; then
        ours=$(flotilla); theirs=$(haproxy)
    else
        theirs=$(haproxy); ours=$(flotilla)
    fi
    echo "$ours"
    echo "$theirs"
    ratio=$(awk -v a="$(rps "$ours")" -v b="$(rps "$theirs")" 'BEGIN {printf "%.3f", a / b}')
    echo "-- round $round: flotilla / haproxy = $ratio"
    RATIOS+=("$ratio")
done
median=$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
echo "== ratios: ${RATIOS[*]}; median $median"
