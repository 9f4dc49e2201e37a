#!/usr/bin/env bash
# Builds the operator binary exactly as the Dockerfile does: release, statically linked
# (glibc with crt-static), so it runs in an image holding nothing but itself and CA certificates.
# Prints the binary's path. Used by the Dockerfile and by the packaging tests.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --release --target "$target" -p personalize-watch --bin personalize-watch >&2
echo "${CARGO_TARGET_DIR:-target}/$target/release/personalize-watch"
