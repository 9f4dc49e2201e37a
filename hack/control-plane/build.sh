#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl of the pinned Kubernetes version from the Go
# module proxy into $PW_CACHE/k8s/$KUBE_VERSION, unless they are already there; with --node
# (before --env) also kubelet, kube-proxy, kube-scheduler and kube-controller-manager, for a
# real node (hack/node.sh).
# Honours envtest's variables: KUBEBUILDER_ASSETS (a folder with all three) and
# TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD / TEST_ASSET_KUBECTL (single binaries).
# Prints, on standard output, the folder holding the three binaries (or a line per binary
# with --env, as TEST_ASSET_* assignments).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/../lib.sh"

here="$REPO_ROOT/hack/control-plane"
out="$PW_CACHE/k8s/$KUBE_VERSION"
mkdir -p "$out"

# Resolve each binary: explicit variable, then KUBEBUILDER_ASSETS, then our cache.
resolve() { # name var
  local name=$1 var=$2
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    echo "$KUBEBUILDER_ASSETS/$name"; return
  fi
  echo "$out/$name"
}
apiserver=$(resolve kube-apiserver TEST_ASSET_KUBE_APISERVER)
etcd=$(resolve etcd TEST_ASSET_ETCD)
kubectl=$(resolve kubectl TEST_ASSET_KUBECTL)

node_parts=(kubelet kube-proxy kube-scheduler kube-controller-manager)
with_node=false
if [ "${1:-}" = "--node" ]; then with_node=true; shift; fi

need_build=()
[ -x "$apiserver" ] || need_build+=(kube-apiserver)
[ -x "$etcd" ] || need_build+=(etcd)
[ -x "$kubectl" ] || need_build+=(kubectl)
if $with_node; then
  for name in "${node_parts[@]}"; do [ -x "$out/$name" ] || need_build+=("$name"); done
fi

if [ ${#need_build[@]} -gt 0 ]; then
  command -v go >/dev/null || die "go is not installed; Go >= 1.25 is needed to build ${need_build[*]}"
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  stamp="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
-X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$minor \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION \
-X k8s.io/client-go/pkg/version.gitMajor=1 \
-X k8s.io/client-go/pkg/version.gitMinor=$minor \
-X k8s.io/client-go/pkg/version.gitTreeState=clean"
  for name in "${need_build[@]}"; do
    case $name in
      kube-apiserver) pkg=k8s.io/kubernetes/cmd/kube-apiserver; dest=$apiserver ;;
      kubectl) pkg=k8s.io/kubernetes/cmd/kubectl; dest=$kubectl ;;
      etcd) pkg=go.etcd.io/etcd/server/v3; dest=$etcd ;;
      *) pkg=k8s.io/kubernetes/cmd/$name; dest=$out/$name ;;
    esac
    [ "$(dirname "$dest")" = "$out" ] || die "$dest is named by the environment but is not an executable file"
    log "building $name $KUBE_VERSION from the Go module proxy into $out (a cold build takes 10-15 minutes on 2 cores)"
    start=$(date +%s)
    (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w $stamp" -o "$dest.tmp" "$pkg")
    mv "$dest.tmp" "$dest"
    log "built $name in $(( $(date +%s) - start ))s"
  done
else
  log "control-plane binaries present: $apiserver, $etcd, $kubectl"
fi

if $with_node && [ "${1:-}" = "--env" ]; then
  for name in "${node_parts[@]}"; do
    echo "PW_$(echo "$name" | tr 'a-z-' 'A-Z_')=$out/$name"
  done
fi

if [ "${1:-}" = "--env" ]; then
  echo "TEST_ASSET_KUBE_APISERVER=$apiserver"
  echo "TEST_ASSET_ETCD=$etcd"
  echo "TEST_ASSET_KUBECTL=$kubectl"
fi
