#!/usr/bin/env bash
# `make demo`: the operator doing its job on an embedded default, start to finish.
# Starts a local control plane and the Personalize emulator with sample jobs, installs the CRD,
# runs the operator, applies examples/demo.yaml and shows `kubectl get svw` and the Events. The
# emulator simulates a living service (the `simulation` block of the state file): new jobs start,
# run and finish, one fails, and the Events follow, with no script touching the emulator. Ctrl-C
# stops everything it started; with DEMO_EXIT=1 it stops by itself at the end.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
step() { printf '\n==> %s\n' "$*"; }

demo_dir="$PW_CACHE/demo-$$"
mkdir -p "$demo_dir"
pids=()
cleanup() {
  trap - EXIT INT TERM
  step "stopping everything the demo started"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  PW_CLUSTER_DIR="$demo_dir/cluster" hack/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$demo_dir"
  echo "done"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "building personalize-watch and personalize-emulator (the first build takes several minutes)"
cargo build --locked --quiet --workspace --bins
bin="$CARGO_TARGET_DIR/debug"

step "starting a local Kubernetes control plane (etcd + kube-apiserver $KUBE_VERSION)"
assets=$(hack/control-plane/build.sh --env | sed 's/^/export /')
eval "$assets"
kubectl() { "$TEST_ASSET_KUBECTL" "$@"; }
exports=$(PW_CLUSTER_DIR="$demo_dir/cluster" PW_OWNER_PID=$$ hack/cluster.sh up | tail -n 1)
eval "$exports"
export KUBECONFIG

step "starting the Personalize emulator with examples/emulator-state.yaml"
"$bin/personalize-emulator" --listen 127.0.0.1:0 --state examples/emulator-state.yaml --log-level warn \
  > "$demo_dir/emulator.out" 2> "$demo_dir/emulator.log" &
pids+=($!)
for _ in $(seq 1 50); do grep -q '^listening on ' "$demo_dir/emulator.out" 2>/dev/null && break; sleep 0.1; done
EMULATOR=$(sed -n 's/^listening on //p' "$demo_dir/emulator.out")
[ -n "$EMULATOR" ] || die "the emulator did not start: $(cat "$demo_dir/emulator.log")"
echo "emulator at $EMULATOR"

step "installing the SolutionVersionWatch CRD"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd/solutionversionwatches.personalize-watch.dev --timeout=30s

step "running the operator (logs: $demo_dir/operator.log)"
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=demo-secret-not-real AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_PERSONALIZE="$EMULATOR" AWS_ENDPOINT_URL_STS="$EMULATOR" \
  "$bin/personalize-watch" run --admin-addr 127.0.0.1:0 > /dev/null 2> "$demo_dir/operator.log" &
pids+=($!)

step "applying examples/demo.yaml"
kubectl apply -f examples/demo.yaml
kubectl wait --for=condition=Ready svw/movie-recs svw/similar-items --timeout=60s

step "kubectl get svw movie-recs"
kubectl get svw movie-recs
step "kubectl get events"
kubectl get events --sort-by=.lastTimestamp -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message

mkdir -p "$demo_dir/plugins"
ln -sf "$bin/kubectl-personalize_watch" "$demo_dir/plugins/kubectl-personalize_watch"

step "watching the simulated service: jobs start, run and finish by themselves (no script touches the emulator)"
last=""
for _ in $(seq 1 60); do
  now=$(kubectl get svw movie-recs --no-headers 2>/dev/null || true)
  if [ "$now" != "$last" ]; then echo "$(date +%T)  $now"; last=$now; fi
  reasons=$(kubectl get events --field-selector involvedObject.name=movie-recs \
    -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}' 2>/dev/null || true)
  if grep -qx BatchInferenceJobFailed <<<"$reasons" && grep -qx BatchInferenceJobCompleted <<<"$reasons"; then
    break
  fi
  sleep 2
done
step "watching a solution follow its retraining: a new version appears, its jobs are counted and announced, and nobody edits the watch"
spec_at_apply=$(kubectl get svw similar-items -o jsonpath='{.spec}')
echo "spec at apply: $spec_at_apply"
announced_on=""
for _ in $(seq 1 60); do
  oldest=$(kubectl get svw similar-items -o jsonpath='{.status.versions[-1:].solutionVersionArn}' 2>/dev/null || true)
  later_jobs=$(kubectl get svw similar-items -o jsonpath='{range .status.jobs[*]}{.name} {.solutionVersionArn}{"\n"}{end}' 2>/dev/null \
    | awk -v oldest="$oldest" '$2 != oldest {print $1 " " $2}' || true)
  announced=$(kubectl get events --field-selector involvedObject.name=similar-items \
    -o jsonpath='{range .items[*]}{.reason} {.related.name}{"\n"}{end}' 2>/dev/null | grep -E '^BatchInferenceJob(Completed|Failed) ' || true)
  announced_on=$(while read -r reason job; do
    version=$(awk -v job="$job" '$1 == job {print $2}' <<<"$later_jobs")
    if [ -n "$version" ]; then echo "$reason $job on version ${version##*/}"; fi
  done <<<"$announced" | head -n 1 || true)
  [ -n "$announced_on" ] && break
  sleep 2
done
[ -n "$announced_on" ] || die "no job of a retrained version was announced"
echo "announced: $announced_on"
kubectl get svw similar-items -o wide
echo "versions with jobs: $(kubectl get svw similar-items -o jsonpath='{.status.versionsTotal}')"
echo "spec now: $(kubectl get svw similar-items -o jsonpath='{.spec}') (generation $(kubectl get svw similar-items -o jsonpath='{.metadata.generation}'))"
PATH="$demo_dir/plugins:$PATH" kubectl personalize-watch jobs similar-items

step "the Events"
kubectl get events --sort-by=.metadata.creationTimestamp -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message
step "kubectl personalize-watch jobs movie-recs (the kubectl plugin, crates/plugin, on PATH as kubectl-personalize_watch)"
PATH="$demo_dir/plugins:$PATH" kubectl personalize-watch jobs movie-recs
step "kubectl personalize-watch list -A"
PATH="$demo_dir/plugins:$PATH" kubectl personalize-watch list -A
step "kubectl get svw"
kubectl get svw

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
step "the demo keeps running: try 'export KUBECONFIG=$KUBECONFIG' and kubectl in another shell; Ctrl-C stops it"
while true; do sleep 3600; done
