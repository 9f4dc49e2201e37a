#!/usr/bin/env bash
# Checks that the test node touches only what it created (hack/node.sh). `make test` plants
# foreign objects before it starts its node and checks them after the node is gone:
#
#   hack/node-safety.sh plant DIR    create the probes (recorded in DIR) and snapshot iptables
#   hack/node-safety.sh check DIR    each probe is still there and iptables is as it was
#   hack/node-safety.sh remove DIR   delete the probes this script created, nothing else
#
# The probes stand for another tool's networking on the same machine (Docker, kind, k3s, a CNI):
# an iptables chain KUBE-FOREIGN-PROBE with a rule, a chain CNI-FOREIGN-PROBE, and a network
# namespace cni-foreign-probe. None is referenced from a built-in chain: they carry no traffic.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

COMMENT=personalize-watch-node-safety-probe

# iptables and ip6tables as saved, without counters and comments, tables with nothing of their
# own (a table first loaded by the node: built-in chains, ACCEPT, no rules) left out.
snapshot() {
  local save
  for save in iptables-save ip6tables-save; do
    command -v "$save" >/dev/null || continue
    echo "## $save"
    "$save" 2>/dev/null | python3 -c '
import re, sys
tables, current = {}, None
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("#") or line == "COMMIT":
        continue
    if line.startswith("*"):
        current = line
        tables[current] = []
        continue
    tables[current].append(re.sub(r" \[\d+:\d+\]$", "", line))
for name in sorted(tables):
    lines = tables[name]
    empty = all(l.startswith(":") and l.split()[1] == "ACCEPT" for l in lines)
    if not empty:
        print(name)
        print("\n".join(sorted(lines)))'
  done
}

plant() {
  local dir=$1
  mkdir -p "$dir"
  : > "$dir/created"
  if ! command -v iptables >/dev/null; then
    command -v apt-get >/dev/null || die "iptables is not installed and there is no apt-get to install it"
    log "installing iptables from Debian"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >&2
  fi
  if iptables -t filter -N KUBE-FOREIGN-PROBE 2>/dev/null; then
    echo "iptables filter KUBE-FOREIGN-PROBE" >> "$dir/created"
    iptables -t filter -A KUBE-FOREIGN-PROBE -m comment --comment "$COMMENT" -j RETURN
  fi
  if iptables -t nat -N CNI-FOREIGN-PROBE 2>/dev/null; then
    echo "iptables nat CNI-FOREIGN-PROBE" >> "$dir/created"
  fi
  if ip netns add cni-foreign-probe 2>/dev/null; then
    echo "netns cni-foreign-probe" >> "$dir/created"
  fi
  snapshot > "$dir/iptables.before"
}

check() {
  local dir=$1 passed=0 failed=0
  expect() {
    if "${@:2}" >/dev/null 2>&1; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      log "node safety: $1"
    fi
  }
  expect "the rule in KUBE-FOREIGN-PROBE is gone" \
    bash -c "iptables -t filter -S KUBE-FOREIGN-PROBE | grep -q -- '$COMMENT'"
  expect "the chain CNI-FOREIGN-PROBE is gone" iptables -t nat -S CNI-FOREIGN-PROBE
  expect "the network namespace cni-foreign-probe is gone" \
    bash -c "ip netns list | awk '{print \$1}' | grep -qx cni-foreign-probe"
  snapshot > "$dir/iptables.after"
  expect "iptables differs from before the node: $(diff "$dir/iptables.before" "$dir/iptables.after" | head -n 20)" \
    cmp -s "$dir/iptables.before" "$dir/iptables.after"
  echo "node safety: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

remove() {
  local dir=$1 kind table name
  [ -f "$dir/created" ] || return 0
  while read -r kind table name; do
    case $kind in
      iptables) iptables -t "$table" -F "$name" 2>/dev/null; iptables -t "$table" -X "$name" 2>/dev/null || true ;;
      netns) ip netns delete "$table" 2>/dev/null || true ;;
    esac
  done < "$dir/created"
  rm -rf "$dir"
}

case "${1:-}" in
  plant) plant "$2" ;;
  check) check "$2" ;;
  remove) remove "$2" ;;
  *) echo "usage: $0 plant DIR | check DIR | remove DIR" >&2; exit 2 ;;
esac
