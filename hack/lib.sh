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

# Tools built from their Go modules (hack/tools.sh and the release scripts): one pin each.
REGISTRY_VERSION=v3.1.2     # github.com/distribution/distribution/v3 (CNCF distribution)
CRANE_VERSION=v0.22.1       # github.com/google/go-containerregistry
ORAS_VERSION=v1.3.6         # oras.land/oras
SYFT_VERSION=v1.57.1        # github.com/anchore/syft
KREW_VERSION=v0.4.3         # sigs.k8s.io/krew
ACTIONLINT_VERSION=v1.7.12  # github.com/rhysd/actionlint
HELM_VERSION=v3.22.0        # helm.sh/helm/v3
CARGO_AUDITABLE_VERSION=0.7.7  # crates.io: cargo-auditable

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


# Builds the Go command PACKAGE at VERSION into $PW_BIN once (`go install`, static, trimmed) and
# prints its path: go_tool PACKAGE VERSION.
go_tool() {
  local package=$1 version=$2 name bin tmp
  name=$(basename "$package")
  bin="$PW_BIN/$name-$version"
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || die "go is not installed; Go >= 1.26 is needed to build $name"
    log "building $name $version from the Go module proxy into $PW_BIN"
    mkdir -p "$PW_BIN"
    tmp=$(mktemp -d)
    GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$package@$version" >&2
    mv "$tmp/$name" "$bin"
    rmdir "$tmp"
  fi
  echo "$bin"
}
registry_bin() { go_tool github.com/distribution/distribution/v3/cmd/registry "$REGISTRY_VERSION"; }
crane_bin() { go_tool github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION"; }
oras_bin() { go_tool oras.land/oras/cmd/oras "$ORAS_VERSION"; }
syft_bin() { go_tool github.com/anchore/syft/cmd/syft "$SYFT_VERSION"; }
krew_bin() { go_tool sigs.k8s.io/krew/cmd/krew "$KREW_VERSION"; }
actionlint_bin() { go_tool github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"; }
krew_validate_bin() { go_tool sigs.k8s.io/krew/cmd/validate-krew-manifest "$KREW_VERSION"; }

# helm, from its Go module (its go.mod has no replace directives, so `go install` works),
# stamped like helm's own release build: its version, and the Kubernetes version of its
# client-go (v0.37) for the default capabilities of `helm template` and `helm lint`.
helm_bin() {
  local helm="$PW_BIN/helm"
  if [ ! -x "$helm" ] || ! "$helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
    command -v go >/dev/null || die "go is not installed; Go >= 1.26 is needed to build helm"
    log "building helm $HELM_VERSION from the Go module proxy into $PW_BIN (a cold build takes a few minutes)"
    mkdir -p "$PW_BIN"
    GOBIN="$PW_BIN" CGO_ENABLED=0 go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  fi
  echo "$helm"
}

# cargo-auditable (hack/build-static.sh builds with it), from crates.io into $PW_CACHE/cargo-tools;
# prints the folder to put on PATH.
cargo_auditable_path() {
  local root="$PW_CACHE/cargo-tools/cargo-auditable-$CARGO_AUDITABLE_VERSION"
  if [ ! -x "$root/bin/cargo-auditable" ]; then
    log "installing cargo-auditable $CARGO_AUDITABLE_VERSION from crates.io into $root"
    cargo install --quiet --locked --version "$CARGO_AUDITABLE_VERSION" --root "$root" cargo-auditable >&2
  fi
  echo "$root/bin"
}
