#!/usr/bin/env bash
# `make image`: the operator's image without a Docker engine. The Dockerfile's final stage is the
# one definition of its contents; hack/oci.py assembles what it says around the binary that
# hack/build-image-binary.sh builds (the same command the Dockerfile's build stage runs), as an
# OCI archive in $PW_CACHE/image (or at PW_IMAGE_ARCHIVE). When a node runs (make cluster-up NODE=1, or PW_CLUSTER_DIR's),
# the image is loaded into its containerd. The last line is the image reference.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
ref="${PW_IMAGE_REPOSITORY:-localhost/personalize-watch}:$version"
# PW_IMAGE_ARCHIVE: where to write the archive instead (the image test names its own).
archive="${PW_IMAGE_ARCHIVE:-$PW_CACHE/image/personalize-watch-$version.oci.tar}"
mkdir -p "$(dirname "$archive")"

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
