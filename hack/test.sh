#!/usr/bin/env bash
# `make test`: every check and test, against a real control plane started for this run.
# Builds or installs what is missing first (see hack/tools.sh); a cold run builds the control
# plane from Go modules and the Rust crate, which takes a while on 2 cores.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
start=$(date +%s)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PW_CACHE/target}"
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs); Rust >= 1.94 is needed"

eval "$(hack/tools.sh)"

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

export PW_CLUSTER_DIR="$PW_CACHE/test-cluster-$$"
cleanup() { PW_CLUSTER_DIR="$PW_CLUSTER_DIR" "$REPO_ROOT/hack/cluster.sh" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
# With a real node (hack/node.sh) for the tests that install the chart; PW_HOST_IP is its address.
eval "$(PW_NODE=1 PW_OWNER_PID=$$ hack/cluster.sh up)"
export KUBECONFIG PW_HOST_IP="${PW_HOST_IP:-}"

log "running the tests (unit, integration, end-to-end) of every crate"
cargo test --locked --workspace -- ${TEST_ARGS:-}
log "all tests passed in $(( $(date +%s) - start ))s"
