#!/usr/bin/env bash
# A release binary for Linux on ARCH (amd64 or arm64), statically linked (glibc with crt-static;
# its DNS and files lookups are built in, so no name-service modules are needed), as the image
# and the plugin archives ship it; the Dockerfile's build stage runs this too. Prints its path.
#
#   hack/build-static.sh ARCH [PACKAGE BINARY]   (default: the operator)
#
# arm64 is cross-built with Debian's aarch64 cross gcc (gcc-aarch64-linux-gnu), installed when
# missing: aws-lc-sys compiles C for the target, and this linker and libc are the host's own
# toolchain family and glibc version (README, "Releases").
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
arch=${1:?usage: hack/build-static.sh amd64|arm64 [PACKAGE BINARY]}
package=${2:-personalize-watch}
binary=${3:-personalize-watch}
case "$arch" in
  amd64) target=x86_64-unknown-linux-gnu strip=strip ;;
  arm64)
    target=aarch64-unknown-linux-gnu strip=aarch64-linux-gnu-strip
    if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
      command -v apt-get >/dev/null || die "aarch64-linux-gnu-gcc is missing and there is no apt-get (Debian: gcc-aarch64-linux-gnu)"
      log "installing gcc-aarch64-linux-gnu from Debian"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >&2
    fi
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
      rustup target add "$target" >&2
    fi
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    ;;
  *) die "unknown architecture $arch (amd64 or arm64)" ;;
esac
PATH="$(cargo_auditable_path):$PATH"
# cargo-auditable records the dependency tree in the binary (section .dep-v0), which syft reads
# for the image's SBOM (hack/release.sh).
RUSTFLAGS="-C target-feature=+crt-static" cargo auditable build --locked --release --target "$target" -p "$package" --bin "$binary" >&2
# Symbols stripped as released, a copy beside the build (.dep-v0 is kept: not a debug section).
out="${CARGO_TARGET_DIR:-target}/static/$arch"
mkdir -p "$out"
"$strip" -o "$out/$binary.tmp" "${CARGO_TARGET_DIR:-target}/$target/release/$binary"
mv "$out/$binary.tmp" "$out/$binary"
echo "$out/$binary"
