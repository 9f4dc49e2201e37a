#!/usr/bin/env bash
# `make release`: everything a user installs, built here and pushed to $PW_REGISTRY.
#
#   1. the operator and the kubectl plugin for linux/amd64 and linux/arm64 (hack/build-static.sh)
#   2. the operator's image: from scratch, a CA bundle layer and the binary's layer, assembled
#      and pushed with crane, then an image index of both platforms, $PW_REGISTRY/personalize-watch:VERSION
#   3. an SPDX SBOM of each platform's image (syft, from the dependency list cargo-auditable
#      put in the binary), attached to that image as an OCI referrer (oras attach)
#   4. the chart, `helm push`ed as oci://$PW_REGISTRY/charts/personalize-watch VERSION
#   5. the plugin's archives and the krew manifest (DIR/plugins/personalize-watch.yaml)
#   6. DIR/SHA256SUMS of every file released
#
# DIR is PW_RELEASE_DIR (default: dist/ in the clone). The last two lines are the image
# reference (with the index's digest) and the chart reference. The image's settings below are
# the Dockerfile's final stage (packaging::the_dockerfile_agrees_with_the_released_image).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

[ -n "${PW_REGISTRY:-}" ] || die "PW_REGISTRY is not set: make registry-up prints it (export PW_REGISTRY=HOST:PORT), or name your registry"
started=$(date +%s)
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
out="${PW_RELEASE_DIR:-$REPO_ROOT/dist}"
repo="$PW_REGISTRY/personalize-watch"
# Where releases are downloaded from (the krew manifest's URIs).
downloads="https://github.com/personalize-watch/personalize-watch/releases/download/v$version"
ARCHES=(amd64 arm64)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# The image's settings, as the Dockerfile's final stage has them.
ENTRYPOINT=/personalize-watch
CMD=run
USER_ID=65532:65532
PORT=8080/tcp
ENVS=("SSL_CERT_FILE=$CA_BUNDLE" "MIMALLOC_ALLOW_THP=0")
LABELS=(
  "org.opencontainers.image.title=personalize-watch"
  "org.opencontainers.image.description=Kubernetes operator that watches AWS Personalize batch inference jobs"
  "org.opencontainers.image.licenses=Apache-2.0"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.source=https://github.com/personalize-watch/personalize-watch"
)

# A loopback or private registry (make registry-up's) speaks plain HTTP; any other, TLS.
case "$PW_REGISTRY" in
  127.*|localhost:*|10.*|192.168.*) plain_http=(--plain-http) ;;
  *) plain_http=() ;;
esac

crane=$(crane_bin)
oras=$(oras_bin)
syft=$(syft_bin)
helm=$(helm_bin)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out/plugins"

# A reproducible layer: tar DIR's files as root-owned, dated 0, sorted.
layer() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$1" -cf "$2" .
}

# The CA bundle (Debian's ca-certificates), the only file of the image besides the binary.
base_layer() {
  if [ ! -f "$CA_BUNDLE" ]; then
    command -v apt-get >/dev/null || die "$CA_BUNDLE is missing (Debian: ca-certificates)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >&2
  fi
  install -D -m 0644 "$CA_BUNDLE" "$work/base$CA_BUNDLE"
  layer "$work/base" "$work/base.tar"
}

# Pushes ARCH's image (by digest, no tag) and prints its digest.
push_platform() {
  local arch=$1 binary=$2 args=() ref
  install -D -m 0755 "$binary" "$work/$arch/personalize-watch"
  layer "$work/$arch" "$work/$arch.tar"
  # crane append pushes under a tag (of this run: releases may run side by side); crane mutate
  # sets the config and pushes by digest; the tag goes.
  "$crane" append --oci-empty-base -f "$work/base.tar" -f "$work/$arch.tar" -t "$repo:build-$arch-$$" >/dev/null 2>"$work/crane.log" \
    || die "crane append failed: $(cat "$work/crane.log")"
  args=(--set-platform "linux/$arch" --entrypoint "$ENTRYPOINT" --cmd "$CMD" --user "$USER_ID" --exposed-ports "$PORT")
  for e in "${ENVS[@]}"; do args+=(--env "$e"); done
  for l in "${LABELS[@]}"; do args+=(--label "$l"); done
  ref=$("$crane" mutate "$repo:build-$arch-$$" "${args[@]}" --repo "$repo" 2>"$work/crane.log") \
    || die "crane mutate failed: $(cat "$work/crane.log")"
  "$crane" delete "$repo:build-$arch-$$" 2>/dev/null || log "could not delete the build tag $repo:build-$arch-$$"
  echo "${ref#*@}"
}

# Attaches an SPDX SBOM of the image DIGEST (platform ARCH) as its referrer.
attach_sbom() {
  local arch=$1 digest=$2
  local sbom="$out/personalize-watch-$version-linux-$arch.spdx.json"
  SYFT_CHECK_FOR_APP_UPDATE=false SYFT_REGISTRY_INSECURE_USE_HTTP=${plain_http:+true} \
    "$syft" scan "registry:$repo@$digest" -q -o "spdx-json=$sbom" \
    || die "syft could not scan $repo@$digest"
  (cd "$out" && "$oras" attach "${plain_http[@]}" --no-tty --artifact-type application/spdx+json \
    "$repo@$digest" "$(basename "$sbom"):application/spdx+json" >/dev/null) \
    || die "oras could not attach the SBOM to $repo@$digest"
}

# The plugin's archive for ARCH: the binary, its completion script and the licence.
plugin_archive() {
  local arch=$1 binary=$2
  local dir="$work/plugin-$arch"
  install -D -m 0755 "$binary" "$dir/kubectl-personalize_watch"
  install -m 0755 crates/plugin/kubectl_complete-personalize_watch "$dir/"
  install -m 0644 LICENSE "$dir/"
  # Named, not `.`: entries without a ./ prefix, so `tar -xzf ARCHIVE NAME` finds them.
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$dir" -cf "$work/plugin-$arch.tar" \
    kubectl-personalize_watch kubectl_complete-personalize_watch LICENSE
  gzip -n -9 < "$work/plugin-$arch.tar" > "$out/kubectl-personalize_watch_linux_$arch.tar.gz"
}

krew_manifest() {
  local arch platforms=""
  for arch in "${ARCHES[@]}"; do
    platforms+="  - selector:
      matchLabels:
        os: linux
        arch: $arch
    uri: $downloads/kubectl-personalize_watch_linux_$arch.tar.gz
    sha256: $(sha256sum "$out/kubectl-personalize_watch_linux_$arch.tar.gz" | cut -d' ' -f1)
    bin: kubectl-personalize_watch
    files:
      - from: kubectl-personalize_watch
        to: .
      - from: kubectl_complete-personalize_watch
        to: .
      - from: LICENSE
        to: .
"
  done
  cat > "$out/plugins/personalize-watch.yaml" <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: personalize-watch
spec:
  version: v$version
  homepage: https://github.com/personalize-watch/personalize-watch
  shortDescription: Show AWS Personalize batch inference jobs of SolutionVersionWatches
  description: |
    Shows what the personalize-watch operator wrote into the status of SolutionVersionWatches:
    every watch with its job counts, latest job and Ready condition (list, -A, -l), and one
    watch's jobs as a table (jobs NAME), or the objects as json or yaml. It reads the cluster
    only; it never calls AWS.
  caveats: |
    Needs the personalize-watch operator in the cluster. For shell completion, put
    kubectl_complete-personalize_watch (in the plugin's folder under ~/.krew/store) on PATH.
  platforms:
$platforms
YAML
}

log "release $version to $repo (platforms: ${ARCHES[*]}) into $out"
base_layer
declare -A digests
for arch in "${ARCHES[@]}"; do
  log "linux/$arch: the operator and the plugin (static)"
  operator=$(hack/build-static.sh "$arch")
  plugin=$(hack/build-static.sh "$arch" kubectl-personalize-watch kubectl-personalize_watch)
  digests[$arch]=$(push_platform "$arch" "$operator")
  plugin_archive "$arch" "$plugin"
  log "linux/$arch: image $repo@${digests[$arch]} ($(stat -c %s "$operator") bytes of binary)"
done
manifests=()
for arch in "${ARCHES[@]}"; do manifests+=(-m "$repo@${digests[$arch]}"); done
"$crane" index append "${manifests[@]}" -t "$repo:$version" 2>"$work/crane.log" >/dev/null \
  || die "crane index append failed: $(cat "$work/crane.log")"
index=$("$crane" digest "$repo:$version")
for arch in "${ARCHES[@]}"; do attach_sbom "$arch" "${digests[$arch]}"; done

log "the chart, as an OCI artifact"
"$helm" package charts/personalize-watch --version "$version" --app-version "$version" -d "$out" >/dev/null
"$helm" push "$out/personalize-watch-$version.tgz" "oci://$PW_REGISTRY/charts" "${plain_http[@]}" 2>"$work/helm.log" \
  || die "helm push failed: $(cat "$work/helm.log")"

krew_manifest
(cd "$out" && find . -type f | sed 's|^\./||' | sort | xargs sha256sum > "$work/SHA256SUMS")
mv "$work/SHA256SUMS" "$out/SHA256SUMS"
log "released in $(( $(date +%s) - started ))s: $(wc -l < "$out/SHA256SUMS") files in $out (SHA256SUMS)"
echo "$repo:$version@$index"
echo "oci://$PW_REGISTRY/charts/personalize-watch:$version"
