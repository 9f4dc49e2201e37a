#!/usr/bin/env bash
# `make lint`: rustfmt and clippy on every crate, Debian's shellcheck (installed when missing)
# on every script, and actionlint (built from its Go module) on the GitHub workflows.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

if ! command -v shellcheck >/dev/null; then
  command -v apt-get >/dev/null || die "shellcheck is not installed and there is no apt-get (https://www.shellcheck.net)"
  log "installing shellcheck from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >&2
fi

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# Fixtures are typed objects or indented raw strings (support::dedent), not one long line.
long=$(git ls-files 'src/*.rs' 'tests/*.rs' | xargs awk 'length > 160 { print FILENAME ":" FNR ": " length " characters" }')
[ -z "$long" ] || die "lines over 160 characters in src/ or tests/:"$'\n'"$long"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck -x "${scripts[@]}"
log "shellcheck: ${#scripts[@]} scripts clean"
actionlint=$(actionlint_bin)
"$actionlint" .github/workflows/*.yml
log "actionlint: $(find .github/workflows -name '*.yml' | wc -l) workflows clean"
