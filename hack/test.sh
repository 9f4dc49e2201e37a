#!/usr/bin/env bash
# `make test`: every check and test, against a real control plane started for this run.
# Builds or installs what is missing first (see hack/tools.sh); a cold run builds the control
# plane from Go modules and the Rust crate, which takes a while on 2 cores.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
start=$(date +%s)
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs); Rust >= 1.94 is needed"

tools=$(hack/tools.sh)
eval "$tools"

hack/lint.sh

export PW_CLUSTER_DIR="$PW_CACHE/test-cluster-$$"
# The run's own registry (hack/registry.sh): the node pulls from it, the release tests push to it.
export PW_REGISTRY_DIR="$PW_CACHE/test-registry-$$"
probes="$PW_CACHE/node-safety-$$"
cleanup() {
  PW_CLUSTER_DIR="$PW_CLUSTER_DIR" "$REPO_ROOT/hack/cluster.sh" down >/dev/null 2>&1 || true
  "$REPO_ROOT/hack/registry.sh" down >/dev/null 2>&1 || true
  "$REPO_ROOT/hack/node-safety.sh" remove "$probes" || true
}
trap cleanup EXIT
# Another tool's networking on this machine, as the node must leave it (hack/node-safety.sh).
# Without what a node needs the node tests fail and say why; there is nothing to check then.
node_safety=0
if hack/node.sh check 2>/dev/null; then
  node_safety=1
  hack/node-safety.sh plant "$probes"
fi
# With a real node (hack/node.sh) for the tests that install the chart; PW_HOST_IP is its address.
# Assigned first: a failed `up` stops the run here (eval of its output would hide the failure).
exports=$(PW_NODE=1 PW_OWNER_PID=$$ hack/cluster.sh up)
eval "$exports"
export KUBECONFIG PW_HOST_IP="${PW_HOST_IP:-}"

# The release, into the run's registry, before the tests: the node and release tests install
# and inspect it (tests/integration/release.rs reads PW_RELEASED), and its builds do not compete
# with timing-sensitive tests for the cores.
registry=$(hack/registry.sh up | sed -n 's/^export PW_REGISTRY=//p')
export PW_RELEASED="$PW_CLUSTER_DIR/released" PW_RELEASE_DIR="$PW_CLUSTER_DIR/release"
PW_REGISTRY=$registry hack/release.sh > "$PW_RELEASED"

# Most integration tests wait on the API server, the emulator or a poll interval rather than
# on a core: four at once on two cores (PW_TEST_THREADS to change it).
export RUST_TEST_THREADS="${PW_TEST_THREADS:-4}"
log "running the tests (unit, integration, end-to-end) of every crate, $RUST_TEST_THREADS at once"
# shellcheck disable=SC2086 # TEST_ARGS holds several words
cargo test --locked --workspace -- ${TEST_ARGS:-}
log "stopping the control plane and its node; checking the node left the host as it found it"
hack/cluster.sh down
if [ "$node_safety" = 1 ]; then hack/node-safety.sh check "$probes"; fi
log "all tests passed in $(( $(date +%s) - start ))s"
