#!/usr/bin/env bash
# A local Kubernetes control plane (etcd + kube-apiserver, and with PW_NODE=1 a real node), the
# command line over the test harness's Rust code (crates/testkit/src/envtest, the `pw-cluster`
# binary), which tests use in-process. This wrapper only exports where the tools are
# (hack/control-plane/build.sh builds what is missing) and the state folder.
#
#   hack/cluster.sh up     start (or find running) and print `export KUBECONFIG=...` as the last stdout line;
#                          with PW_NODE=1 also a real node (hack/node.sh), and `export PW_HOST_IP=...` before
#                          it: the address on the node's bridge where the API server listens and pods reach the host
#   hack/cluster.sh down   stop everything and remove its state
#   hack/cluster.sh status exit 0 when the API server answers /readyz
#   hack/cluster.sh restart-apiserver [--down-for S]  kill kube-apiserver and start it again
#
# PW_CLUSTER_DIR  state folder (default: $PW_CACHE/cluster); one control plane per folder;
#                 DIR/state.json says what runs there.
# PW_OWNER_PID    when set, a reaper tears the control plane down as soon as that process ends,
#                 so a test run that panics or is killed leaves no etcd or kube-apiserver behind.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

export PW_CLUSTER_DIR="${PW_CLUSTER_DIR:-$PW_CACHE/cluster}"
if [ "${1:-}" = up ] || [ "${1:-}" = restart-apiserver ]; then
  # Assigned first: a failed build stops here (eval of its output would hide the failure).
  exports=$("$REPO_ROOT/hack/control-plane/build.sh" --env | sed 's/^/export /')
  eval "$exports"
fi
# Every binary, as the tests build them (crates/testkit/src/processes.rs, `binary`).
(cd "$REPO_ROOT" && cargo build --locked --quiet --workspace --bins)
exec "$CARGO_TARGET_DIR/debug/pw-cluster" "$@"
