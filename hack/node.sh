#!/usr/bin/env bash
# A real node for the local control plane (hack/cluster.sh up with PW_NODE=1 calls this):
# containerd and runc from Debian, CNI bridge/host-local/loopback, the pause image built from its
# C source and pulled, like every image, from the local registry (hack/registry.sh), and kubelet, kube-proxy, kube-scheduler and kube-controller-manager built from the
# same Kubernetes module as kube-apiserver.
#
#   hack/node.sh net-up DIR   the node's bridge (before kube-apiserver listens on it)
#   hack/node.sh up DIR       containerd, the node components, and wait for the node to be Ready
#   hack/node.sh down DIR     stop everything, unmount, delete what it created (below)
#   hack/node.sh check        say what this machine lacks to run containers (exit 1 if anything)
#
# The node touches only what it created: net-up records the host's iptables chains, network
# namespaces and the sysctls the node components set; down deletes only chains and namespaces
# that appeared since (chains named KUBE-* or CNI-*, pod namespaces our containerd reports) and
# puts the sysctls back. hack/node-safety.sh checks it around `make test`'s node.
#
# Network rule: nothing here sends traffic beyond addresses it creates. The node and the API
# server use NODE_IP on the bridge pw-node0; pods get 10.250.0.0/24 on the CNI bridge pw-cni0
# and reach NODE_IP through it; Services are 10.0.0.0/24 (kube-proxy, iptables).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

NODE_IP=10.249.0.1
NODE_BRIDGE=pw-node0
CNI_BRIDGE=pw-cni0
POD_CIDR=10.250.0.0/24
NODE_NAME=pw-node

# Host settings the node's components change (kubelet's kernel tunables, forwarding): recorded
# before and put back after.
SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet)

# What is missing to run containers here, one line each.
missing() {
  [ "$(id -u)" = 0 ] || echo "root: kubelet and containerd need root (run make test as root)"
  [ -d /sys/fs/cgroup/cpu ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || echo "cgroups: /sys/fs/cgroup has no cpu controller mounted"
  grep -qw overlay /proc/filesystems || echo "overlayfs: the kernel lacks overlay (modprobe overlay)"
  command -v ip >/dev/null || echo "iproute2: apt-get install iproute2"
}

check() {
  local lacks
  lacks=$(missing)
  if [ -n "$lacks" ]; then
    printf 'this machine cannot run a node:\n%s\n' "$lacks" >&2
    return 1
  fi
}

# containerd, runc, CNI plugins and iptables from Debian, installed once.
install_packages() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v iptables >/dev/null || need+=(iptables)
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  [ ${#need[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get to install them"
  log "installing ${need[*]} from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

net_up() {
  local dir=$1
  check
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    [ -f "$dir/node/owner" ] || die "$NODE_BRIDGE exists: another node runs ($(cat /run/personalize-watch-node 2>/dev/null)); stop it with make cluster-down"
  fi
  refuse_foreign_kube_chains
  mkdir -p "$dir/node"
  echo "$dir" > "$dir/node/owner"
  # Where the API server listens and pods reach the host: the harness reads it from here.
  echo "$NODE_IP" > "$dir/node/host-ip"
  echo "$dir" > /run/personalize-watch-node
  record_host "$dir/node"
  ip link add "$NODE_BRIDGE" type bridge 2>/dev/null || true
  ip addr replace "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Pods reach the node's address through the CNI bridge: the host routes between bridges.
  sysctl -qw net.ipv4.ip_forward=1
}

# The user chains of each iptables table, one `FAMILY TABLE CHAIN` a line.
chains() {
  local family save
  for family in 4 6; do
    save=iptables-save; [ "$family" = 6 ] && save=ip6tables-save
    command -v "$save" >/dev/null || continue
    "$save" 2>/dev/null | awk -v f="$family" '/^\*/ { t = substr($0, 2) } /^:/ { print f, t, substr($1, 2) }'
  done
}

# kube-proxy and kubelet rewrite these chains by name: where another kube-proxy or kubelet runs on
# this host's network (k3s, kubeadm), or a node of ours was killed before its teardown, starting
# would change chains this node did not create. Refuse, and say which.
KUBE_CHAINS='KUBE-(SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|FORWARD|FIREWALL|EXTERNAL-SERVICES|PROXY-FIREWALL|PROXY-CANARY|KUBELET-CANARY|IPTABLES-HINT)'
refuse_foreign_kube_chains() {
  local found
  found=$(chains | grep -E " ${KUBE_CHAINS}\$" || true)
  [ -z "$found" ] || die "chains of another kube-proxy or kubelet exist on this host (IPv4 4, IPv6 6):
$found
the test node would change them; stop what made them (or, for a node of ours killed before its
teardown, delete those chains) and try again"
}

# What the node's teardown compares against: chains, network namespaces, sysctls.
record_host() {
  local n=$1 key
  chains > "$n/chains.before"
  ip netns list 2>/dev/null | awk '{print $1}' > "$n/netns.before"
  : > "$n/sysctl.before"
  for key in "${SYSCTLS[@]}"; do
    sysctl -n "$key" >/dev/null 2>&1 && echo "$key=$(sysctl -n "$key")" >> "$n/sysctl.before"
  done
}

# The local registry, also on the node's bridge address (hack/registry.sh node-up): what
# containerd pulls every image from. Prints that address (NODE_IP:PORT).
node_registry() {
  local dir=$1 address
  address=$("$REPO_ROOT/hack/registry.sh" node-up)
  echo "${PW_REGISTRY_DIR:-$PW_CACHE/registry}" > "$dir/node/registry-dir"
  echo "$address" > "$dir/node/registry"
  echo "$address"
}

# The pause image: a static program that waits for a signal, pushed to the registry (through
# loopback) with crane; prints its reference at the node's registry address.
pause_image() {
  local dir=$1 registry=$2 loopback crane
  local work="$dir/node/pause"
  loopback=$("$REPO_ROOT/hack/registry.sh" up | sed -n 's/^export PW_REGISTRY=//p')
  crane=$(crane_bin)
  mkdir -p "$work/layer"
  cat > "$work/pause.c" <<'C'
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; exit(0); }
int main(void) { signal(SIGTERM, stop); signal(SIGINT, stop); for (;;) pause(); }
C
  gcc -static -O2 -o "$work/layer/pause" "$work/pause.c"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/layer" -cf "$work/pause.tar" .
  "$crane" append --oci-empty-base -f "$work/pause.tar" -t "$loopback/personalize-watch/pause:build" >/dev/null 2>"$work/crane.log" \
    || die "crane append failed: $(cat "$work/crane.log")"
  "$crane" mutate "$loopback/personalize-watch/pause:build" --set-platform linux/amd64 --entrypoint /pause \
    --user 65535:65535 -t "$loopback/personalize-watch/pause:3.10" >/dev/null 2>"$work/crane.log" \
    || die "crane mutate failed: $(cat "$work/crane.log")"
  "$crane" delete "$loopback/personalize-watch/pause:build" 2>/dev/null || true
  echo "$registry/personalize-watch/pause:3.10"
}

# kubelet's cgroup root, in every v1 hierarchy (cpuset needs its cpus and mems set first).
make_cgroup_root() {
  for hierarchy in /sys/fs/cgroup/*/; do
    [ -f "$hierarchy/cgroup.procs" ] || continue
    mkdir -p "$hierarchy/personalize-watch"
    if [ -f "$hierarchy/cpuset.cpus" ]; then
      cat "$hierarchy/cpuset.cpus" > "$hierarchy/personalize-watch/cpuset.cpus"
      cat "$hierarchy/cpuset.mems" > "$hierarchy/personalize-watch/cpuset.mems"
    fi
  done
}

# containerd pulls from the node's registry address over plain HTTP: a hosts.toml for that
# address only; every other registry keeps HTTPS.
write_registry_hosts() {
  local n=$1 registry=$2
  mkdir -p "$n/certs.d/$registry"
  cat > "$n/certs.d/$registry/hosts.toml" <<TOML
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
TOML
}

write_containerd_config() {
  local dir=$1 registry=$2 pause=$3
  local n="$dir/node"
  mkdir -p "$n/cni/net.d" "$n/cni/data"
  write_registry_hosts "$n" "$registry"
  cat > "$n/cni/net.d/10-pw.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "personalize-watch",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$n/cni/data", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
JSON
  cat > "$n/containerd.toml" <<TOML
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
[grpc]
  address = "$n/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  # This machine's root cannot lower oom_score_adj (no CAP_SYS_RESOURCE in its bounding set).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$n/certs.d"
TOML
}

start_containerd() {
  local dir=$1 registry=$2 pause=$3
  local n="$dir/node"
  write_containerd_config "$dir" "$registry" "$pause"
  containerd --config "$n/containerd.toml" > "$n/containerd.log" 2>&1 &
  echo $! > "$n/containerd.pid"
  for _ in $(seq 1 100); do
    ctr --address "$n/containerd.sock" version >/dev/null 2>&1 && return 0
    alive "$n/containerd.pid" || die "containerd exited: $(tail -n 5 "$n/containerd.log")"
    sleep 0.2
  done
  die "containerd did not answer within 20s"
}

write_kubelet_config() {
  local dir=$1
  local n="$dir/node"
  cat > "$n/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This kernel mounts cgroup v1 controllers; kubelet 1.35 refuses them unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /personalize-watch
containerRuntimeEndpoint: unix://$n/containerd.sock
failSwapOn: false
address: $NODE_IP
port: $(cat "$n/kubelet.port")
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(cat "$n/kubelet-healthz.port")
podLogsDir: $n/pod-logs
staticPodPath: $n/manifests
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
serializeImagePulls: false
YAML
}

start_components() {
  local dir=$1
  local n="$dir/node" pki="$dir/pki" kc="$dir/kubeconfig"
  mkdir -p "$n/manifests" "$n/pod-logs" "$n/kubelet"
  make_cgroup_root
  free_port > "$n/kubelet.port"; free_port > "$n/kubelet-healthz.port"
  write_kubelet_config "$dir"
  "$PW_KUBELET" --config "$n/kubelet.yaml" --kubeconfig "$kc" --root-dir "$n/kubelet" \
    --cert-dir "$n/kubelet-pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" -v 1 \
    > "$n/kubelet.log" 2>&1 &
  echo $! > "$n/kubelet.pid"
  "$PW_KUBE_PROXY" --kubeconfig "$kc" --hostname-override "$NODE_NAME" --proxy-mode iptables \
    --cluster-cidr "$POD_CIDR" --bind-address "$NODE_IP" --nodeport-addresses "$NODE_IP/32" \
    --healthz-bind-address "127.0.0.1:$(free_port)" --metrics-bind-address "127.0.0.1:$(free_port)" \
    --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
    > "$n/kube-proxy.log" 2>&1 &
  echo $! > "$n/kube-proxy.pid"
  "$PW_KUBE_SCHEDULER" --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false \
    > "$n/kube-scheduler.log" 2>&1 &
  echo $! > "$n/kube-scheduler.pid"
  "$PW_KUBE_CONTROLLER_MANAGER" --kubeconfig "$kc" --authentication-kubeconfig "$kc" \
    --authorization-kubeconfig "$kc" --bind-address 127.0.0.1 --secure-port "$(free_port)" \
    --leader-elect=false --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false --controllers '*,-nodeipam,-cloud-node-lifecycle' \
    > "$n/kube-controller-manager.log" 2>&1 &
  echo $! > "$n/kube-controller-manager.pid"
}

wait_node_ready() {
  local dir=$1
  local n="$dir/node"
  for _ in $(seq 1 300); do
    if "$TEST_ASSET_KUBECTL" --kubeconfig "$dir/kubeconfig" get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; then
      return 0
    fi
    for p in kubelet kube-proxy kube-scheduler kube-controller-manager containerd; do
      alive "$n/$p.pid" || die "$p exited; see $n/$p.log: $(tail -n 5 "$n/$p.log")"
    done
    sleep 0.5
  done
  die "node $NODE_NAME not Ready within 150s; see $n/kubelet.log"
}

up() {
  local dir=$1 n="$1/node"
  check
  install_packages
  # shellcheck disable=SC1090
  source <("$REPO_ROOT/hack/control-plane/build.sh" --node --env | sed 's/^/export /')
  local started
  started=$(date +%s)
  local registry pause
  registry=$(node_registry "$dir")
  pause=$(pause_image "$dir" "$registry")
  start_containerd "$dir" "$registry" "$pause"
  start_components "$dir"
  wait_node_ready "$dir"
  log "node $NODE_NAME Ready at $NODE_IP in $(( $(date +%s) - started ))s, pulling from the registry at $registry (logs in $n)"
}

# Chains the node added (KUBE-* of kube-proxy and kubelet, CNI-* of the CNI plugins) that were
# not there before it: rules jumping to them go first, then the chains. Nothing else is touched.
remove_iptables_chains() {
  local n=$1 family table restore
  [ -f "$n/chains.before" ] || return 0
  chains | grep -E ' (KUBE|CNI)-' | grep -vxFf "$n/chains.before" > "$n/chains.ours" || true
  for family in 4 6; do
    restore=iptables; [ "$family" = 6 ] && restore=ip6tables
    awk -v f="$family" '$1 == f {print $2}' "$n/chains.ours" | sort -u | while read -r table; do
      {
        echo "*$table"
        "$restore-save" -t "$table" 2>/dev/null | awk -v f="$family" -v t="$table" '
          FNR == NR { if ($1 == f && $2 == t) ours[$3] = 1; next }
          /^-A / { for (i = 1; i <= NF; i++) if ($i == "-j" || $i == "-g") if ($(i + 1) in ours) { sub(/^-A /, "-D "); print; next } }
        ' "$n/chains.ours" -
        awk -v f="$family" -v t="$table" '$1 == f && $2 == t { print "-F " $3 }' "$n/chains.ours"
        awk -v f="$family" -v t="$table" '$1 == f && $2 == t { print "-X " $3 }' "$n/chains.ours"
        echo COMMIT
      } | "$restore-restore" --noflush || log "could not remove the node's $restore chains in $table"
    done
  done
}

# Pod network namespaces: the ones our containerd's sandboxes name (their netns paths), else
# cni-* namespaces that appeared since net-up.
pod_netns() {
  local n=$1 c=(ctr --address "$1/containerd.sock" -n k8s.io) ids
  if alive "$n/containerd.pid"; then
    ids=$("${c[@]}" containers ls -q 2>/dev/null) || ids=
    for id in $ids; do
      "${c[@]}" containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for ns in (spec.get("linux") or {}).get("namespaces") or []:
    if ns.get("type") == "network" and ns.get("path"):
        print(ns["path"].rsplit("/", 1)[-1])' 2>/dev/null || true
    done
  fi
  if [ -f "$n/netns.before" ]; then
    ip netns list 2>/dev/null | awk '/^cni-/ {print $1}' | grep -vxFf "$n/netns.before" || true
  fi
}

restore_sysctls() {
  local n=$1 line
  [ -f "$n/sysctl.before" ] || return 0
  while read -r line; do
    [ "$(sysctl -n "${line%%=*}" 2>/dev/null)" = "${line#*=}" ] || sysctl -qw "$line" || true
  done < "$n/sysctl.before"
}

down() {
  local dir=$1 n="$1/node"
  [ -d "$n" ] || return 0
  # Best effort, every step: one that finds nothing to do must not stop the others.
  set +e
  for p in kubelet kube-proxy kube-scheduler kube-controller-manager; do stop_pid "$n/$p.pid"; done
  local namespaces
  namespaces=$(pod_netns "$n" | sort -u)
  if alive "$n/containerd.pid"; then
    local c=(ctr --address "$n/containerd.sock" -n k8s.io)
    for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 0.5
    for t in $("${c[@]}" tasks ls -q 2>/dev/null); do "${c[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for ct in $("${c[@]}" containers ls -q 2>/dev/null); do "${c[@]}" containers delete "$ct" >/dev/null 2>&1 || true; done
  fi
  stop_pid "$n/containerd.pid"
  # The registry's instance on the bridge goes with the bridge; the loopback one stays
  # (make registry-down stops it).
  if [ -f "$n/registry-dir" ]; then
    PW_REGISTRY_DIR=$(cat "$n/registry-dir") "$REPO_ROOT/hack/registry.sh" node-down
  fi
  # Shims outlive containerd when their tasks did; ours are the ones naming our socket.
  pkill -9 -f "containerd-shim-runc-v2 .*-address $n/containerd.sock" 2>/dev/null || true
  # Our pods' network namespaces (bind-mounted in /run/netns) take their veths with them.
  for ns in $namespaces; do ip netns delete "$ns" 2>/dev/null || true; done
  # kubelet bind-mounts its root dir onto itself; volumes and rootfs are mounts below it.
  grep -E " ${n}[/ ]" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  remove_iptables_chains "$n"
  ip link delete "$CNI_BRIDGE" 2>/dev/null || true
  ip link delete "$NODE_BRIDGE" 2>/dev/null || true
  for ctl in /sys/fs/cgroup/*/personalize-watch; do
    if [ -d "$ctl" ]; then find "$ctl" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  restore_sysctls "$n"
  rm -f /run/personalize-watch-node
  set -e
  log "node stopped: its processes, mounts, interfaces, chains and namespaces removed, sysctls restored"
}

case "${1:-}" in
  net-up) net_up "$2" ;;
  up) up "$2" ;;
  down) down "$2" ;;
  check) check ;;
  ip) echo "$NODE_IP" ;;
  *) echo "usage: $0 net-up DIR | up DIR | down DIR | check | ip" >&2; exit 2 ;;
esac
