# shellcheck shell=bash
# Shared settings and helpers for the hack/ scripts. Sourced, not run.
# Caches live outside the clone so a fresh clone reuses them; nothing depends on them being warm.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The one source of the Kubernetes version: the wrapper module that builds the control plane.
KUBE_VERSION="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$REPO_ROOT/hack/control-plane/go.mod")"
PW_CACHE="${PW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/personalize-watch}"
# shellcheck disable=SC2034 # used by the scripts that source this
PW_BIN="$PW_CACHE/bin"
# Every script and make target builds into one target folder, so a warm cache serves them all.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PW_CACHE/target}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ -n "$KUBE_VERSION" ] || die "cannot read the Kubernetes version from hack/control-plane/go.mod"

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Whether the process in pid file $1 runs.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops process $1 (a pid): TERM, up to 5 s, then KILL.
stop_process() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Stops the process in pid file $1, if it runs.
stop_pid() {
  alive "$1" || return 0
  stop_process "$(cat "$1")"
}

