#!/usr/bin/env bash
# Builds the Debian package (target/debian/flotilla_VERSION_ARCH.deb) with cargo-deb,
# installing cargo-deb from crates.io when it is missing, and lists what it holds.
# PROFILE=lto builds the production binary (slower); the default is `release`.
#
#   scripts/package-deb.sh
#   sudo apt install ./target/debian/flotilla_*.deb && sudo systemctl enable --now flotilla
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-release}"
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
cargo build --locked --profile "$PROFILE" --bin flotilla
if [ "$PROFILE" != release ]; then
    # The package's asset list names target/release/flotilla.
    mkdir -p target/release && cp "target/$PROFILE/flotilla" target/release/flotilla
fi
cargo deb --no-build --strip
deb="$(ls -t target/debian/flotilla_*.deb | head -1)"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
echo "$deb"
