#!/usr/bin/env bash
# Runs flotilla's whole test suite. On a fresh machine it first installs what the tests
# need from the system's package manager (ffmpeg, Chromium, npm), so this one command
# is all the set-up a newcomer or CI needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests drive as real clients. Listed here, installed only when missing.
needed_packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || needed_packages+=(ffmpeg)
# A load balancer in front of a cluster (tests/haproxy.rs).
command -v haproxy >/dev/null || needed_packages+=(haproxy)
# Servers inputs pull from (tests/pull.rs): nginx for HLS files, nginx-rtmp for RTMP.
command -v nginx >/dev/null || needed_packages+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || needed_packages+=(libnginx-mod-rtmp)
# `script` gives the shell test a pseudo-terminal.
command -v script >/dev/null || needed_packages+=(util-linux)
# Players: hls.js (embedded by the build from the npm registry) in headless Chromium.
command -v chromium >/dev/null || needed_packages+=(chromium)
command -v npm >/dev/null || needed_packages+=(nodejs npm)
if ((${#needed_packages[@]})); then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed_packages[@]}"
    else
        echo "scripts/test.sh: please install: ${needed_packages[*]}" >&2
        exit 1
    fi
fi

cargo test --workspace --locked "$@"
