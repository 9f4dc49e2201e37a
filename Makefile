# personalize-watch: the development loop. `make help` lists the targets.
SHELL := bash
# hack/lib.sh is the one place that decides the cache folder and the target folder in it.
ifndef CARGO_TARGET_DIR
CARGO_TARGET_DIR := $(shell bash -c 'source hack/lib.sh && echo "$$CARGO_TARGET_DIR"')
endif
ifndef PW_CACHE
PW_CACHE := $(shell bash -c 'source hack/lib.sh && echo "$$PW_CACHE"')
endif
export PW_CACHE CARGO_TARGET_DIR

.PHONY: help build test soak lint fmt crds tools control-plane cluster-up cluster-down registry-up registry-down release demo bench bench-emulator

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build the operator and emulator binaries
	cargo build --locked --workspace --bins

test: ## every check and test against a real control plane (builds what is missing)
	hack/test.sh

soak: ## the soak tests in their full length (Event refusal 10 minutes, fairness 5 minutes)
	PW_SOAK=1 TEST_ARGS="exactly_once::events_refused_for_minutes tenancy::a_crowded_namespace_slows_only_itself" hack/test.sh

lint: ## rustfmt and clippy on every crate, shellcheck on every script, actionlint on the workflows
	hack/lint.sh

fmt: ## format the code
	cargo fmt --all

crds: ## regenerate crds/ (and the chart's copy) from the Rust types
	cargo run --locked --quiet --bin personalize-watch -- crd > crds/solutionversionwatches.personalize-watch.dev.yaml
	cp crds/solutionversionwatches.personalize-watch.dev.yaml charts/personalize-watch/crds/

tools: ## build kube-apiserver, etcd, kubectl; install aws-cli and boto3 (into $(PW_CACHE))
	hack/tools.sh >/dev/null

control-plane: ## build kube-apiserver, etcd and kubectl only
	hack/control-plane/build.sh

cluster-up: ## start a local control plane (NODE=1: and a real node); the last line is `export KUBECONFIG=...`
	@PW_NODE=$(NODE) hack/cluster.sh up

cluster-down: ## stop the local control plane (and its node) and remove its state
	@hack/cluster.sh down

registry-up: ## a local OCI registry (distribution v3) on loopback (and the node's bridge); the last line is `export PW_REGISTRY=...`
	@hack/registry.sh up

registry-down: ## stop the local registry and remove its storage
	@hack/registry.sh down

release: ## (PW_REGISTRY set) images for amd64 and arm64, chart, SBOMs, plugin archives, krew manifest into dist/; the last two lines are the image and chart references
	@hack/release.sh

demo: ## the operator on an embedded default: control plane, emulator, sample watch (Ctrl-C stops)
	hack/demo.sh

bench: ## the operator at scale: the named scenarios (bench::Scenario), memory and scaling curves, rate limit (about 18 minutes)
	hack/bench.sh

bench-emulator: ## emulator pages per second through the real SDK (release build)
	cargo bench --locked -p personalize-emulator --bench pages
