#!/usr/bin/env bash
# HTTPS serving of a flotilla node against nginx, with the same certificate and key, the
# same bytes and the same wrk command:
# 1. segment GETs/s on keep-alive connections: one MPEG-TS segment of a live stream
#    (~100 KB: assets/testsrc.ts published over RTMP, 2 s segments) fetched again and
#    again (`wrk -t2 -cCONNECTIONS`, HTTP/1.1 over TLS), and the transfer rate;
# 2. TLS handshakes/s: the same wrk with `Connection: close` on a tiny response
#    (flotilla's /flotilla/api/health, 60 bytes; nginx serves a file with the same bytes),
#    so every request is a new TCP connection and a new TLS handshake. wrk keeps its TLS
#    session across reconnections (it recycles each connection's SSL object with
#    SSL_clear, which keeps the session), so these are TLS 1.3 resumptions (PSK with
#    X25519, no certificate signature): measure "resumed";
# 3. full TLS handshakes/s: the same wrk command with a small LD_PRELOAD shim (compiled
#    here with cc) that drops the session when wrk recycles the SSL object, so every
#    connection is a full handshake (X25519 + ECDSA P-256 signature): measure "full".
#    Before the rounds, a separate nginx server that logs $ssl_session_reused shows how
#    many of wrk's handshakes were resumptions, with and without the shim.
#
#   apt-get install -y wrk nginx-light      # Debian packages (and ffmpeg, cc, curl, openssl)
#   scripts/bench-https.sh [DURATION_S] [ROUNDS] [CONNECTIONS]   # defaults: 10 s, 3 rounds, 64
#
# Environment: FLOTILLA=PATH runs that binary instead of building `--profile lto`;
# NGINX_WORKERS (default 2, what `worker_processes auto` gives on this 2-core machine);
# PLAIN=1 adds a measure, the same segment over plain HTTP on both servers (what TLS costs
# each of them); PERF_OUT=PREFIX records flotilla's runs with perf
# (PREFIX-MEASURE-rROUND.data, call graphs).
#
# wrk shares the two cores with the server under test, so one run swings with whatever
# else the machine does. The runs are therefore paired: each round measures both servers
# back to back on each measure, flotilla first in odd rounds and nginx first in even
# ones, and the summary is the median of the per-round ratios flotilla / nginx. Each
# round takes the newest segment of the live window again and gives nginx the same bytes
# under the same path (the window holds it for SEGMENT_COUNT × 2 s, longer than a round's
# segment runs). Both servers run on loopback all along; only the one measured is loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
ROUNDS="${2:-3}"
CONNECTIONS="${3:-64}"
NGINX_WORKERS="${NGINX_WORKERS:-2}"
HTTP_PORT=18611
HTTPS_PORT=18612
RTMP_PORT=18613
NGINX_PORT=18621
NGINX_HTTP_PORT=18622
NGINX_CHECK_PORT=18623
STREAM=bench
TRACKS=tracks-v1a1
# The segment picked at a round's start must stay in the window (SEGMENT_COUNT × 2 s) through
# both segment runs of the round.
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

for tool in wrk nginx ffmpeg curl openssl cc; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install -y wrk nginx-light ffmpeg gcc)" >&2; exit 1; }
done
if [ -n "${FLOTILLA:-}" ]; then
    BIN="$FLOTILLA"
else
    cargo build --profile lto --quiet --bin flotilla
    BIN=target/lto/flotilla
fi

"$BIN" dev-cert --dir "$WORK/tls" >/dev/null
CERT="$WORK/tls/flotilla.crt"
KEY="$WORK/tls/flotilla.key"

cat > "$WORK/flotilla.conf" <<CONF
http 127.0.0.1:$HTTP_PORT;
https 127.0.0.1:$HTTPS_PORT;
rtmp 127.0.0.1:$RTMP_PORT;
tls_certificate $CERT;
tls_key $KEY;
loglevel error;
stream $STREAM { input publish://; segment_duration 2; segment_count $SEGMENT_COUNT; }
CONF
"$BIN" run -c "$WORK/flotilla.conf" > "$WORK/flotilla.log" 2>&1 &
FLOTILLA_PID=$!
PIDS+=("$FLOTILLA_PID")
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/flotilla/api/health" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/flotilla/api/health" \
    || { echo "flotilla did not start" >&2; cat "$WORK/flotilla.log" >&2; exit 1; }

# The publisher of tests/common/ffmpeg.rs (publish_clip).
ffmpeg -v error -re -stream_loop -1 -i assets/testsrc.ts -c copy -f flv \
    "rtmp://127.0.0.1:$RTMP_PORT/static/$STREAM" </dev/null > "$WORK/ffmpeg.log" 2>&1 &
PIDS+=($!)

PLAYLIST="http://127.0.0.1:$HTTP_PORT/$STREAM/$TRACKS/mono.m3u8"
newest_segment() { # the last segment the playlist lists (YYYY/MM/DD/HH/MM/SS-DURATION.ts), without a query
    curl -sf "$PLAYLIST" | grep -v '^#' | grep '\.ts' | tail -n 1 | sed 's/[?].*//'
}
for _ in $(seq 1 150); do
    [ -n "$(newest_segment || true)" ] && break
    sleep 0.2
done
[ -n "$(newest_segment || true)" ] \
    || { echo "no segment in $PLAYLIST" >&2; cat "$WORK/flotilla.log" "$WORK/ffmpeg.log" >&2; exit 1; }

# nginx: the same certificate, files under the same paths.
WWW="$WORK/www"
mkdir -p "$WWW/$STREAM/$TRACKS" "$WWW/flotilla/api" "$WORK/nginx"
curl -sf -o "$WWW/flotilla/api/health" "http://127.0.0.1:$HTTP_PORT/flotilla/api/health"
HEALTH_BYTES=$(stat -c %s "$WWW/flotilla/api/health")
# nginx workers drop to nobody when started as root: they must reach the files.
chmod 755 "$WORK" && chmod -R a+rX "$WWW"
NGINX_HTTP_LISTEN=""
[ "${PLAIN:-0}" = 1 ] && NGINX_HTTP_LISTEN="listen 127.0.0.1:$NGINX_HTTP_PORT;"
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
    default_type application/octet-stream;
    types { video/mp2t ts; application/json health; }
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        $NGINX_HTTP_LISTEN
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        # Debian's nginx.conf enables TLS 1.3 and server cipher order; nginx 1.22's
        # built-in default stops at TLS 1.2, which would compare different handshakes.
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        root $WWW;
    }
    # Not measured: tells whether wrk's handshakes were resumptions.
    log_format reused \$ssl_session_reused;
    server {
        listen 127.0.0.1:$NGINX_CHECK_PORT ssl;
        access_log $WORK/nginx/reused.log reused;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        root $WWW;
    }
}
CONF
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 1 50); do
    curl -sf -o /dev/null --cacert "$CERT" "https://127.0.0.1:$NGINX_PORT/flotilla/api/health" && break
    sleep 0.1
done
curl -sf -o /dev/null --cacert "$CERT" "https://127.0.0.1:$NGINX_PORT/flotilla/api/health" \
    || { echo "nginx did not start" >&2; cat "$WORK/nginx/error.log" >&2; exit 1; }
NGINX_WORKER_PIDS=$(ps -o pid= --ppid "$NGINX_PID" | tr '\n' ' ')

SEGMENT=""
pick_segment() { # the newest segment, fetched once; nginx serves the same bytes
    SEGMENT=$(newest_segment)
    rm -rf "${WWW:?}/$STREAM/$TRACKS"
    mkdir -p "$(dirname "$WWW/$STREAM/$TRACKS/$SEGMENT")"
    curl -sf -o "$WWW/$STREAM/$TRACKS/$SEGMENT" "http://127.0.0.1:$HTTP_PORT/$STREAM/$TRACKS/$SEGMENT"
    chmod -R a+rX "$WWW"
}
pick_segment

echo "== $("$BIN" --version 2>/dev/null || echo flotilla) ($BIN); $(nginx -v 2>&1 | sed 's/.*: //') with $NGINX_WORKERS workers" \
    "($(nginx -V 2>&1 | grep -o 'built with OpenSSL [0-9.]*' || true)); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "== the same bytes and the same TLS on both"
TLS_SEEN=()
for server in "flotilla $HTTPS_PORT" "nginx $NGINX_PORT"; do
    set -- $server
    segment_sha=$(curl -sf --cacert "$CERT" "https://127.0.0.1:$2/$STREAM/$TRACKS/$SEGMENT" | sha256sum | cut -c1-16)
    health_sha=$(curl -sf --cacert "$CERT" "https://127.0.0.1:$2/flotilla/api/health" | sha256sum | cut -c1-16)
    h2=$(curl -s -o /dev/null --cacert "$CERT" --http2 -w '%{http_version}' "https://127.0.0.1:$2/flotilla/api/health")
    heads=$(curl -s -o /dev/null --cacert "$CERT" --http1.1 -w '%{size_header}' "https://127.0.0.1:$2/$STREAM/$TRACKS/$SEGMENT")
    tls=$(openssl s_client -connect "127.0.0.1:$2" -CAfile "$CERT" </dev/null 2>/dev/null \
        | awk '/^New, / {version = $2; cipher = $NF} /Server Temp Key/ {key = $4}
               END {sub(/,$/, "", version); sub(/,$/, "", key); print version, cipher, key}')
    TLS_SEEN+=("$1: $tls")
    printf '  %-8s segment %s (sha256 %s, %s header bytes), health %s; curl --http2 got HTTP/%s; openssl s_client: %s\n' \
        "$1" "$SEGMENT" "$segment_sha" "$heads" "$health_sha" "$h2" "$tls"
done
echo "  segment $(stat -c %s "$WWW/$STREAM/$TRACKS/$SEGMENT") bytes, health $HEALTH_BYTES bytes; segment window $SEGMENT_COUNT × 2 s"

# wrk forgets its TLS session on each reconnection: full handshakes.
cat > "$WORK/no-resumption.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern int SSL_set_session(SSL *s, SSL_SESSION *session);
int SSL_clear(SSL *s) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    int result = real(s);
    SSL_set_session(s, (SSL_SESSION *)0);
    return result;
}
C
NO_RESUMPTION="$WORK/no-resumption.so"
cc -O2 -shared -fPIC -o "$NO_RESUMPTION" "$WORK/no-resumption.c" -lssl -ldl
reused_counts() { # wrk with ENV… for 1 s on the logging server: "N resumed of M"
    : > "$WORK/nginx/reused.log"
    env "$@" wrk -t2 -c8 -d1s -H "Connection: close" "https://127.0.0.1:$NGINX_CHECK_PORT/flotilla/api/health" >/dev/null
    sleep 0.2
    echo "$(grep -c '^r$' "$WORK/nginx/reused.log" || true) resumed of $(wc -l < "$WORK/nginx/reused.log")"
}
echo "  wrk -H 'Connection: close': $(reused_counts) handshakes; with the shim: $(reused_counts LD_PRELOAD="$NO_RESUMPTION")"

HZ=$(getconf CLK_TCK)
cpu_ticks() { # PIDS… : user+system clock ticks of all of them
    local total=0 pid
    for pid in "$@"; do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
# run LABEL MEASURE SERVER URL [WRK ARGS…]: prints wrk's figures, then "RESULT rps transfer_MiB cpu_us_per_req".
run() {
    local label="$1" measure="$2" server="$3" url="$4"; shift 4
    local pids before after out requests rps transfer errors
    if [ "$server" = flotilla ]; then pids="$FLOTILLA_PID"; else pids="$NGINX_WORKER_PIDS"; fi
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    if [ -n "${PERF_OUT:-}" ] && [ "$server" = flotilla ]; then
        perf record -q -F 999 -g -p "$FLOTILLA_PID" -o "$PERF_OUT-$measure-r$round.data" -- sleep "$DURATION" 2>/dev/null &
    fi
    if [ "$measure" = full ]; then
        out=$(LD_PRELOAD="$NO_RESUMPTION" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$@" "$url")
    else
        out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$@" "$url")
    fi
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    wait 2>/dev/null || true
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    # wrk's KB/MB/GB are binary units.
    transfer=$(echo "$out" | awk '/Transfer\/sec/ {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+/, "", v);
        f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1 / 1024 : 1 / 1048576; printf "%.1f", v * f}')
    errors=$(echo "$out" | grep -E "Socket errors|Non-2xx" | tr -s ' ' | tr '\n' ';' || true)
    echo "   $label: $rps req/s, $transfer MiB/s, server CPU $(( (after - before) * 1000000 / HZ / (requests > 0 ? requests : 1) )) µs/request${errors:+ — $errors}" >&2
    echo "RESULT $rps $transfer $(( (after - before) * 1000000 / HZ / (requests > 0 ? requests : 1) ))"
}

MEASURES=(segments resumed full)
[ "${PLAIN:-0}" = 1 ] && MEASURES+=(plain)
declare -A FL_RPS NG_RPS FL_MIB NG_MIB FL_CPU NG_CPU RATIO
SEGMENT_BYTES=()
for round in $(seq 1 "$ROUNDS"); do
    pick_segment
    SEGMENT_BYTES[$round]=$(stat -c %s "$WWW/$STREAM/$TRACKS/$SEGMENT")
    echo "== round $round ($( (( round % 2 )) && echo "flotilla first" || echo "nginx first");" \
        "segment $SEGMENT, ${SEGMENT_BYTES[$round]} bytes)"
    for measure in "${MEASURES[@]}"; do
        case "$measure" in
            segments)
                fl=(run "flotilla $measure" "$measure" flotilla "https://127.0.0.1:$HTTPS_PORT/$STREAM/$TRACKS/$SEGMENT")
                ng=(run "nginx    $measure" "$measure" nginx "https://127.0.0.1:$NGINX_PORT/$STREAM/$TRACKS/$SEGMENT") ;;
            resumed|full)
                fl=(run "flotilla $measure" "$measure" flotilla "https://127.0.0.1:$HTTPS_PORT/flotilla/api/health" -H "Connection: close")
                ng=(run "nginx    $measure" "$measure" nginx "https://127.0.0.1:$NGINX_PORT/flotilla/api/health" -H "Connection: close") ;;
            plain)
                fl=(run "flotilla $measure" "$measure" flotilla "http://127.0.0.1:$HTTP_PORT/$STREAM/$TRACKS/$SEGMENT")
                ng=(run "nginx    $measure" "$measure" nginx "http://127.0.0.1:$NGINX_HTTP_PORT/$STREAM/$TRACKS/$SEGMENT") ;;
        esac
        if (( round % 2 )); then
            ours=$("${fl[@]}"); theirs=$("${ng[@]}")
        else
            theirs=$("${ng[@]}"); ours=$("${fl[@]}")
        fi
        read -r _ "FL_RPS[$measure,$round]" "FL_MIB[$measure,$round]" "FL_CPU[$measure,$round]" <<< "$ours"
        read -r _ "NG_RPS[$measure,$round]" "NG_MIB[$measure,$round]" "NG_CPU[$measure,$round]" <<< "$theirs"
        RATIO["$measure,$round"]=$(awk -v a="${FL_RPS[$measure,$round]}" -v b="${NG_RPS[$measure,$round]}" 'BEGIN {printf "%.3f", a / b}')
        echo "   -> $measure round $round: flotilla / nginx = ${RATIO[$measure,$round]}"
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
column_of() { # ARRAY MEASURE: the values of every round
    local -n values="$1"; local round
    for round in $(seq 1 "$ROUNDS"); do echo "${values[$2,$round]}"; done
}
echo
echo "== summary: $ROUNDS paired rounds of ${DURATION} s, wrk -t2 -c$CONNECTIONS (HTTP/1.1 over TLS), segment bytes per round ${SEGMENT_BYTES[*]}, health $HEALTH_BYTES B"
echo "   TLS (openssl s_client) ${TLS_SEEN[0]}; ${TLS_SEEN[1]}"
printf '%-11s %-6s %14s %14s %9s %14s %14s %16s\n' measure round "flotilla req/s" "nginx req/s" ratio "flotilla MiB/s" "nginx MiB/s" "CPU µs/req f/n"
for measure in "${MEASURES[@]}"; do
    for round in $(seq 1 "$ROUNDS"); do
        printf '%-11s %-6s %14s %14s %9s %14s %14s %16s\n' "$measure" "$round" \
            "${FL_RPS[$measure,$round]}" "${NG_RPS[$measure,$round]}" "${RATIO[$measure,$round]}" \
            "${FL_MIB[$measure,$round]}" "${NG_MIB[$measure,$round]}" "${FL_CPU[$measure,$round]} / ${NG_CPU[$measure,$round]}"
    done
    # shellcheck disable=SC2046
    printf '%-11s %-6s %14s %14s %9s %14s %14s %16s\n' "$measure" median \
        "$(median $(column_of FL_RPS "$measure"))" "$(median $(column_of NG_RPS "$measure"))" \
        "$(median $(column_of RATIO "$measure"))" \
        "$(median $(column_of FL_MIB "$measure"))" "$(median $(column_of NG_MIB "$measure"))" \
        "$(median $(column_of FL_CPU "$measure")) / $(median $(column_of NG_CPU "$measure"))"
done
echo "(segments: keep-alive GETs of the segment; resumed: Connection: close, wrk resuming its TLS 1.3 session;"
echo " full: Connection: close, full handshakes; plain: the segment over plain HTTP. ratio: flotilla req/s ÷ nginx"
echo " req/s in the same round; CPU: the server's user+system time per request, wrk's not counted)"
