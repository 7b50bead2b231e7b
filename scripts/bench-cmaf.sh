#!/usr/bin/env bash
# CMAF serving of a flotilla node against nginx serving the same bytes under the same
# paths, with the same wrk command (plain HTTP/1.1, keep-alive):
# 1. segments: GETs/s of one fMP4 video segment of a live stream (assets/testsrc.ts
#    published over RTMP, 2 s segments, 200 ms parts: a `v1-N.m4s` of ~100 KB);
# 2. parts: GETs/s of one LL-HLS part of it (`v1-N.0.m4s`, ~20 KB, the keyframe's).
#
#   apt-get install -y wrk nginx-light ffmpeg curl
#   scripts/bench-cmaf.sh [DURATION_S] [ROUNDS] [CONNECTIONS]   # defaults: 10 s, 3 rounds, 64
#
# Environment: FLOTILLA=PATH runs that binary instead of building `--profile lto`;
# NGINX_WORKERS (default 2, `worker_processes auto` on this 2-core machine).
#
# wrk shares the cores with the server under test, so the runs are paired: each round
# measures both servers back to back on each measure (flotilla first in odd rounds,
# nginx first in even ones) and the summary is the median of the per-round ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
ROUNDS="${2:-3}"
CONNECTIONS="${3:-64}"
NGINX_WORKERS="${NGINX_WORKERS:-2}"
HTTP_PORT=18631
RTMP_PORT=18633
NGINX_PORT=18641
STREAM=bench
# The segment picked at a round's start must stay in the window through the round.
SEGMENT_COUNT=$(( DURATION + 15 > 30 ? DURATION + 15 : 30 ))
(( SEGMENT_COUNT <= 100 )) || { echo "DURATION too long for a 100-segment window" >&2; exit 1; }
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk nginx ffmpeg curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install -y wrk nginx-light ffmpeg curl)" >&2; exit 1; }
done
if [ -n "${FLOTILLA:-}" ]; then
    BIN="$FLOTILLA"
else
    cargo build --profile lto --quiet --bin flotilla
    BIN=target/lto/flotilla
fi

cat > "$WORK/flotilla.conf" <<CONF
http 127.0.0.1:$HTTP_PORT;
rtmp 127.0.0.1:$RTMP_PORT;
loglevel error;
stream $STREAM { input publish://; segment_duration 2; segment_count $SEGMENT_COUNT; chunk_duration 200; }
CONF
"$BIN" run -c "$WORK/flotilla.conf" > "$WORK/flotilla.log" 2>&1 &
FLOTILLA_PID=$!
PIDS+=("$FLOTILLA_PID")
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/flotilla/api/health" && break
    sleep 0.1
done
ffmpeg -v error -re -stream_loop -1 -i assets/testsrc.ts -c copy -f flv \
    "rtmp://127.0.0.1:$RTMP_PORT/static/$STREAM" </dev/null > "$WORK/ffmpeg.log" 2>&1 &
PIDS+=($!)

PLAYLIST="http://127.0.0.1:$HTTP_PORT/$STREAM/v1.ll.m3u8"
newest_segment() { # the last complete segment the LL-HLS video playlist lists
    curl -sf "$PLAYLIST" | grep -v '^#' | grep '\.m4s' | tail -n 1
}
for _ in $(seq 1 150); do
    [ -n "$(newest_segment || true)" ] && break
    sleep 0.2
done
[ -n "$(newest_segment || true)" ] \
    || { echo "no segment in $PLAYLIST" >&2; cat "$WORK/flotilla.log" "$WORK/ffmpeg.log" >&2; exit 1; }

WWW="$WORK/www"
mkdir -p "$WWW/$STREAM" "$WORK/nginx"
chmod 755 "$WORK"
cat > "$WORK/nginx.conf" <<CONF
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log error;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { video/mp4 m4s; }
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WWW;
    }
}
CONF
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
sleep 0.5
NGINX_WORKER_PIDS=$(ps -o pid= --ppid "$NGINX_PID" | tr '\n' ' ')

SEGMENT="" PART=""
pick() { # the newest segment and its first part, fetched once; nginx serves the same bytes
    SEGMENT=$(newest_segment)
    PART="${SEGMENT%.m4s}.0.m4s"
    rm -f "$WWW/$STREAM"/*.m4s
    curl -sf -o "$WWW/$STREAM/$SEGMENT" "http://127.0.0.1:$HTTP_PORT/$STREAM/$SEGMENT"
    curl -sf -o "$WWW/$STREAM/$PART" "http://127.0.0.1:$HTTP_PORT/$STREAM/$PART"
    chmod -R a+rX "$WWW"
}
pick
echo "== $("$BIN" --version 2>/dev/null || echo flotilla) ($BIN); $(nginx -v 2>&1 | sed 's/.*: //') with $NGINX_WORKERS workers; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
for server in "flotilla $HTTP_PORT" "nginx $NGINX_PORT"; do
    set -- $server
    printf '  %-8s %s sha256 %s, %s sha256 %s\n' "$1" "$SEGMENT" \
        "$(curl -sf "http://127.0.0.1:$2/$STREAM/$SEGMENT" | sha256sum | cut -c1-16)" "$PART" \
        "$(curl -sf "http://127.0.0.1:$2/$STREAM/$PART" | sha256sum | cut -c1-16)"
done

HZ=$(getconf CLK_TCK)
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
# run LABEL SERVER URL: prints wrk's figures, then "RESULT rps cpu_us_per_req".
run() {
    local label="$1" server="$2" url="$3" pids before after out requests rps per
    if [ "$server" = flotilla ]; then pids="$FLOTILLA_PID"; else pids="$NGINX_WORKER_PIDS"; fi
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$url")
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    per=$(( (after - before) * 1000000 / HZ / (requests > 0 ? requests : 1) ))
    echo "   $label: $rps req/s, server CPU $per µs/request $(echo "$out" | grep -E "Socket errors|Non-2xx" | tr -s ' ' | tr '\n' ';' || true)" >&2
    echo "RESULT $rps $per"
}

MEASURES=(segments parts)
declare -A FL NG FLC NGC RATIO BYTES
for round in $(seq 1 "$ROUNDS"); do
    pick
    BYTES[segments,$round]=$(stat -c %s "$WWW/$STREAM/$SEGMENT")
    BYTES[parts,$round]=$(stat -c %s "$WWW/$STREAM/$PART")
    echo "== round $round ($( (( round % 2 )) && echo "flotilla first" || echo "nginx first"); $SEGMENT ${BYTES[segments,$round]} B, $PART ${BYTES[parts,$round]} B)"
    for measure in "${MEASURES[@]}"; do
        file=$SEGMENT
        [ "$measure" = parts ] && file=$PART
        fl=(run "flotilla $measure" flotilla "http://127.0.0.1:$HTTP_PORT/$STREAM/$file")
        ng=(run "nginx    $measure" nginx "http://127.0.0.1:$NGINX_PORT/$STREAM/$file")
        if (( round % 2 )); then ours=$("${fl[@]}"); theirs=$("${ng[@]}"); else theirs=$("${ng[@]}"); ours=$("${fl[@]}"); fi
        read -r _ "FL[$measure,$round]" "FLC[$measure,$round]" <<< "$ours"
        read -r _ "NG[$measure,$round]" "NGC[$measure,$round]" <<< "$theirs"
        RATIO["$measure,$round"]=$(awk -v a="${FL[$measure,$round]}" -v b="${NG[$measure,$round]}" 'BEGIN {printf "%.3f", a / b}')
    done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
column_of() { local -n values="$1"; local round; for round in $(seq 1 "$ROUNDS"); do echo "${values[$2,$round]}"; done; }
echo
echo "== summary: $ROUNDS paired rounds of ${DURATION} s, wrk -t2 -c$CONNECTIONS, plain HTTP/1.1 keep-alive"
printf '%-9s %-6s %9s %14s %14s %9s %16s\n' measure round bytes "flotilla req/s" "nginx req/s" ratio "CPU µs/req f/n"
for measure in "${MEASURES[@]}"; do
    for round in $(seq 1 "$ROUNDS"); do
        printf '%-9s %-6s %9s %14s %14s %9s %16s\n' "$measure" "$round" "${BYTES[$measure,$round]}" \
            "${FL[$measure,$round]}" "${NG[$measure,$round]}" "${RATIO[$measure,$round]}" "${FLC[$measure,$round]} / ${NGC[$measure,$round]}"
    done
    # shellcheck disable=SC2046
    printf '%-9s %-6s %9s %14s %14s %9s %16s\n' "$measure" median "" \
        "$(median $(column_of FL "$measure"))" "$(median $(column_of NG "$measure"))" \
        "$(median $(column_of RATIO "$measure"))" "$(median $(column_of FLC "$measure")) / $(median $(column_of NGC "$measure"))"
done
