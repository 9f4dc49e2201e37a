#!/usr/bin/env bash
# A local OCI registry: CNCF distribution v3, built from its Go module (hack/lib.sh pins it).
#
#   hack/registry.sh up         start it on loopback (or find it running); the last line is
#                               `export PW_REGISTRY=127.0.0.1:PORT`
#   hack/registry.sh down       stop it and remove its storage
#   hack/registry.sh node-up    also serve it on the node's bridge address, same port (hack/node.sh
#                               up calls this): a read-only instance on the same storage, the
#                               address the node's containerd pulls from over plain HTTP
#   hack/registry.sh node-down  stop the bridge instance only (hack/node.sh down)
#
# PW_REGISTRY_DIR  its state and storage (default: $PW_CACHE/registry); `make test` uses its own.
# Distribution listens on one address per process, so the bridge gets a second process; that
# one is read-only (storage.maintenance.readonly), so pushes go through loopback alone.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

dir="${PW_REGISTRY_DIR:-$PW_CACHE/registry}"

# The configuration of one instance: config ADDRESS READONLY.
config() {
  cat <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: $2
http:
  addr: $1
YAML
}

# Starts the instance NAME on ADDRESS (read-only or not) and waits until it answers /v2/.
start() {
  local name=$1 address=$2 readonly=$3 registry
  registry=$(registry_bin)
  config "$address" "$readonly" > "$dir/$name.yml"
  # No tracing exporter: distribution v3 would otherwise try an OTLP collector on loopback.
  OTEL_TRACES_EXPORTER=none "$registry" serve "$dir/$name.yml" > "$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$address/v2/" 2>/dev/null && return 0
    alive "$dir/$name.pid" || die "the registry exited: $(tail -n 5 "$dir/$name.log")"
    sleep 0.1
  done
  die "the registry did not answer on $address within 10s; see $dir/$name.log"
}

up() {
  mkdir -p "$dir/storage"
  if ! alive "$dir/loopback.pid"; then
    free_port > "$dir/port"
    start loopback "127.0.0.1:$(cat "$dir/port")" false
    log "registry (distribution $REGISTRY_VERSION) on 127.0.0.1:$(cat "$dir/port"), storage $dir/storage"
  fi
  echo "export PW_REGISTRY=127.0.0.1:$(cat "$dir/port")"
}

node_up() {
  local ip
  ip=$("$REPO_ROOT/hack/node.sh" ip)
  up >/dev/null
  alive "$dir/node.pid" || start node "$ip:$(cat "$dir/port")" true
  echo "$ip:$(cat "$dir/port")"
}

node_down() { stop_pid "$dir/node.pid"; }

down() {
  node_down
  stop_pid "$dir/loopback.pid"
  rm -rf "$dir"
  log "registry stopped, its storage removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  node-up) node_up ;;
  node-down) node_down ;;
  *) echo "usage: $0 up | down | node-up | node-down" >&2; exit 2 ;;
esac
