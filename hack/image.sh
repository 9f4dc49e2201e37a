#!/usr/bin/env bash
# `make image`: the operator's image without a Docker engine. The Dockerfile's final stage is the
# one definition of its contents; hack/oci.py assembles what it says around the binary that
# hack/build-image-binary.sh builds (the same command the Dockerfile's build stage runs), as an
# OCI archive in $PW_CACHE/image. When a node runs (make cluster-up NODE=1, or PW_CLUSTER_DIR's),
# the image is loaded into its containerd. The last line is the image reference.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PW_CACHE/target}"
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
ref="${PW_IMAGE_REPOSITORY:-localhost/personalize-watch}:$version"
mkdir -p "$PW_CACHE/image"
archive="$PW_CACHE/image/personalize-watch-$version.oci.tar"

log "building the operator binary as the Dockerfile's build stage does"
binary=$(hack/build-image-binary.sh)
python3 hack/oci.py image --dockerfile Dockerfile --binary "$binary" --name "$ref" --out "$archive" >/dev/null
log "assembled $ref from the Dockerfile's final stage: $archive ($(du -h "$archive" | cut -f1))"

sock="${PW_CLUSTER_DIR:-$PW_CACHE/cluster}/node/containerd.sock"
if [ -S "$sock" ]; then
  ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
  log "loaded into the node's containerd ($sock)"
fi
echo "$ref"
