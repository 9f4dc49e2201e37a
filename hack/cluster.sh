#!/usr/bin/env bash
# A local Kubernetes control plane (etcd + kube-apiserver), started the way
# controller-runtime's envtest starts it.
#
#   hack/cluster.sh up     start (or find running) and print `export KUBECONFIG=...` as the last stdout line;
#                          with PW_NODE=1 also a real node (hack/node.sh), and `export PW_HOST_IP=...` before
#                          it: the address on the node's bridge where the API server listens and pods reach the host
#   hack/cluster.sh down   stop both processes and remove their state
#   hack/cluster.sh status exit 0 when the API server answers /readyz
#   hack/cluster.sh restart-apiserver [--down-for S]  kill kube-apiserver and start it again
#
# PW_CLUSTER_DIR  state folder (default: $PW_CACHE/cluster); one control plane per folder.
# PW_OWNER_PID    when set, a reaper tears the control plane down as soon as that process ends,
#                 so a test run that panics or is killed leaves no etcd or kube-apiserver behind.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

dir="${PW_CLUSTER_DIR:-$PW_CACHE/cluster}"
kubeconfig="$dir/kubeconfig"

running() { alive "$dir/$1.pid"; }

api_host() { cat "$dir/apiserver.host" 2>/dev/null || echo 127.0.0.1; }

ready() {
  [ -f "$dir/apiserver.port" ] || return 1
  curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    "https://$(api_host):$(cat "$dir/apiserver.port")/readyz" >/dev/null 2>&1
}

stop() {
  if [ -d "$dir/node" ]; then "$REPO_ROOT/hack/node.sh" down "$dir" || true; fi
  for p in reaper apiserver etcd; do
    if running "$p"; then
      pid=$(cat "$dir/$p.pid")
      # The reaper runs `down` itself (bash may exec it in the reaper's own process): kill
      # neither our parent nor ourselves.
      if [ "$pid" = "$PPID" ] || [ "$pid" = "$$" ]; then continue; fi
      stop_process "$pid"
    fi
  done
}

make_pki() {
  local pki="$dir/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=personalize-watch-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/serving.key" -out "$pki/serving.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,IP:10.249.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$pki/serving.ext"
  openssl x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 3650 \
    -extfile "$pki/serving.ext" -out "$pki/serving.crt" 2>/dev/null
  # The admin user: authenticated by client certificate, in group system:masters.
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$pki/admin.ext"
  openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 3650 \
    -extfile "$pki/admin.ext" -out "$pki/admin.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

write_kubeconfig() {
  local port=$1 pki="$dir/pki" host
  host=$(api_host)
  b64() { base64 -w0 < "$1"; }
  cat > "$kubeconfig.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: personalize-watch-local
  cluster:
    server: https://$host:$port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: personalize-watch-local
  context:
    cluster: personalize-watch-local
    user: admin
    namespace: default
current-context: personalize-watch-local
KC
  mv "$kubeconfig.tmp" "$kubeconfig"
}

start_apiserver() {
  # exec, so the recorded pid is kube-apiserver's own.
  bash -c "exec $(cat "$dir/apiserver.cmd")" >> "$dir/apiserver.log" 2>&1 &
  echo $! > "$dir/apiserver.pid"
}

wait_ready() {
  for _ in $(seq 1 300); do
    ready && return 0
    running apiserver || die "kube-apiserver exited; see $dir/apiserver.log: $(tail -n 5 "$dir/apiserver.log")"
    sleep 0.2
  done
  die "kube-apiserver did not become ready within 60s; see $dir/apiserver.log"
}

# Kills the API server (etcd keeps the data) and starts it again on the same port.
restart_apiserver() {
  if running apiserver; then
    kill -9 "$(cat "$dir/apiserver.pid")" 2>/dev/null || true
    sleep 0.5
  fi
  if [ "${1:-}" = "--down-for" ]; then sleep "$2"; fi
  log "restarting kube-apiserver"
  start_apiserver
  wait_ready
}

# What a caller needs, for people and scripts as export lines (the last one KUBECONFIG), and for
# the Rust test harness as $dir/state.json (it reads that file, never this output). PW_HOST_IP is
# the node's address when it runs (the API server listens there too).
print_exports() {
  local host_ip=""
  if [ -f "$dir/node/ready" ]; then host_ip=$(api_host); fi
  printf '{"kubeconfig": "%s", "hostIp": "%s", "dir": "%s"}\n' "$kubeconfig" "$host_ip" "$dir" > "$dir/state.json"
  if [ -n "$host_ip" ]; then echo "export PW_HOST_IP=$host_ip"; fi
  echo "export KUBECONFIG=$kubeconfig"
}

up() {
  local want_node=${PW_NODE:-0}
  if running apiserver && running etcd && ready && { [ "$want_node" != 1 ] || [ -f "$dir/node/ready" ]; }; then
    log "control plane already running in $dir"
    print_exports
    return
  fi
  stop
  rm -rf "$dir"
  mkdir -p "$dir"
  # shellcheck disable=SC1090
  source <("$REPO_ROOT/hack/control-plane/build.sh" --env | sed 's/^/export /')
  make_pki
  local host=127.0.0.1 node_args=(--disable-admission-plugins ServiceAccount --endpoint-reconciler-type none)
  if [ "$want_node" = 1 ]; then
    if lacks=$("$REPO_ROOT/hack/node.sh" check 2>&1); then
      "$REPO_ROOT/hack/node.sh" net-up "$dir"
      host=$("$REPO_ROOT/hack/node.sh" ip)
      # Pods reach the API server through the kubernetes Service, so it advertises itself there.
      node_args=(--advertise-address "$host")
    else
      log "no node: $lacks"
      echo "$lacks" > "$dir/node-missing"
    fi
  fi
  echo "$host" > "$dir/apiserver.host"

  local etcd_port etcd_peer api_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  log "starting etcd on 127.0.0.1:$etcd_port"
  "$TEST_ASSET_ETCD" --name local --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level warn \
    --quota-backend-bytes 8589934592 \
    > "$dir/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"
  for _ in $(seq 1 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
    running etcd || die "etcd exited; see $dir/etcd.log: $(tail -n 5 "$dir/etcd.log")"
    sleep 0.2
  done

  log "starting kube-apiserver $KUBE_VERSION on https://$host:$api_port"
  local pki="$dir/pki"
  local args=(
    "$TEST_ASSET_KUBE_APISERVER"
    --etcd-servers "http://127.0.0.1:$etcd_port"
    --bind-address "$host" --secure-port "$api_port"
    --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key"
    --client-ca-file "$pki/ca.crt"
    --authorization-mode RBAC
    --service-account-issuer https://kubernetes.default.svc.cluster.local
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key"
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true
    "${node_args[@]}"
  )
  # Kept so `restart-apiserver` starts it again the same way.
  printf '%q ' "${args[@]}" > "$dir/apiserver.cmd"
  start_apiserver
  echo "$api_port" > "$dir/apiserver.port"

  if [ -n "${PW_OWNER_PID:-}" ]; then
    # Detached reaper: tears down when the owner ends, whatever way it ends.
    # shellcheck disable=SC2016 # expanded by the reaper's own shell, from its arguments
    nohup setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; PW_CLUSTER_DIR="$2" "$3" down' \
      reaper "$PW_OWNER_PID" "$dir" "$REPO_ROOT/hack/cluster.sh" >/dev/null 2>&1 &
    echo $! > "$dir/reaper.pid"
  fi

  wait_ready
  write_kubeconfig "$api_port"
  log "control plane ready; admin kubeconfig at $kubeconfig"
  if [ -d "$dir/node" ]; then
    TEST_ASSET_KUBECTL="$TEST_ASSET_KUBECTL" "$REPO_ROOT/hack/node.sh" up "$dir"
    touch "$dir/node/ready"
  fi
  print_exports
}

down() {
  stop
  rm -rf "$dir"
  log "control plane in $dir stopped and removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) ready ;;
  restart-apiserver) shift; restart_apiserver "$@" ;;
  *) echo "usage: $0 up|down|status|restart-apiserver [--down-for SECONDS]" >&2; exit 2 ;;
esac
