#!/usr/bin/env bash
# `make bench`: the operator at scale (release build) against a control plane started for the
# run and the emulator. Prints the table; also in target/bench-operator.md.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
tools=$(hack/tools.sh)
eval "$tools"
export PW_CLUSTER_DIR="$PW_CACHE/bench-cluster-$$"
cleanup() { PW_CLUSTER_DIR="$PW_CLUSTER_DIR" "$REPO_ROOT/hack/cluster.sh" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
exports=$(PW_OWNER_PID=$$ hack/cluster.sh up | tail -n 1)
eval "$exports"
export KUBECONFIG
cargo bench --locked --bench operator
