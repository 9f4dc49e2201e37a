# Shared settings for the hack/ scripts. Sourced, not run.
# Caches live outside the clone so a fresh clone reuses them; nothing depends on them being warm.
KUBE_VERSION="${KUBE_VERSION:-v1.35.4}"
PW_CACHE="${PW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/personalize-watch}"
PW_BIN="$PW_CACHE/bin"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
