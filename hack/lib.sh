# Shared settings for the hack/ scripts. Sourced, not run.
# Caches live outside the clone so a fresh clone reuses them; nothing depends on them being warm.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The one source of the Kubernetes version: the wrapper module that builds the control plane.
KUBE_VERSION="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$REPO_ROOT/hack/control-plane/go.mod")"
PW_CACHE="${PW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/personalize-watch}"
PW_BIN="$PW_CACHE/bin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ -n "$KUBE_VERSION" ] || die "cannot read the Kubernetes version from hack/control-plane/go.mod"
