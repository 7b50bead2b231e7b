#!/usr/bin/env bash
# Runs flotilla's whole test suite. On a fresh machine it first installs what the tests
# need from the system's package manager (ffmpeg, Chromium, npm), so this one command
# is all the set-up a newcomer or CI needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests drive as real clients. Listed here, installed only when missing.
needed_packages=()
# The build itself: str0m's DTLS (WebRTC) links the system's OpenSSL.
pkg-config --exists openssl 2>/dev/null || needed_packages+=(libssl-dev pkg-config)
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || needed_packages+=(ffmpeg)
# A load balancer in front of a cluster (tests/haproxy.rs).
command -v haproxy >/dev/null || needed_packages+=(haproxy)
# Servers inputs pull from (tests/pull.rs): nginx for HLS files, nginx-rtmp for RTMP.
command -v nginx >/dev/null || needed_packages+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || needed_packages+=(libnginx-mod-rtmp)
# An IP camera (tests/rtsp.rs): GStreamer's RTSP server from Debian's python3 with gi,
# x264 (-ugly), x265 (-bad), the RTP payloaders (-good) and an AAC encoder (libav).
camera_check='import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst; Gst.init(None)
assert all(Gst.ElementFactory.find(e) for e in ("x264enc", "x265enc", "rtph264pay", "rtph265pay", "avenc_aac", "rtpmp4gpay"))'
/usr/bin/python3 -c "$camera_check" 2>/dev/null ||
    needed_packages+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
        gstreamer1.0-libav)
# SRT (tests/srt.rs): srt-live-transmit as an encoder's gateway; libsrt comes with it
# (and with Debian's ffmpeg), which the node loads for its SRT listener and inputs.
command -v srt-live-transmit >/dev/null || needed_packages+=(srt-tools)
# Prometheus's own OpenMetrics parser reads the node's metrics (tests/metrics.rs).
/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null ||
    needed_packages+=(python3-prometheus-client)
# HTTPS and HTTP/2 as a client sees them (tests/tls.rs): curl with nghttp2.
command -v curl >/dev/null || needed_packages+=(curl)
# `script` gives the shell test a pseudo-terminal.
command -v script >/dev/null || needed_packages+=(util-linux)
# Players: hls.js (embedded by the build from the npm registry) in headless Chromium,
# which is also the WebRTC client (WHIP with its fake camera, WHEP) of tests/browser_webrtc.rs.
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
