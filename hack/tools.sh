#!/usr/bin/env bash
# Installs what the tests need besides Rust, into $PW_CACHE (outside the clone):
# kube-apiserver, etcd and kubectl (built from Go modules), and a Python venv with the real
# aws-cli and boto3 from PyPI. Prints `export VAR=...` lines for the test run on stdout.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

AWSCLI_VERSION=1.46.3
BOTO3_VERSION=1.44.8

"$REPO_ROOT/hack/control-plane/build.sh" --env | sed 's/^/export /'

venv="$PW_CACHE/venv"
stamp="$venv/.installed-awscli-$AWSCLI_VERSION-boto3-$BOTO3_VERSION"
if [ ! -f "$stamp" ]; then
  command -v python3 >/dev/null || die "python3 is needed for aws-cli and boto3"
  log "installing aws-cli $AWSCLI_VERSION and boto3 $BOTO3_VERSION from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "awscli==$AWSCLI_VERSION" "boto3==$BOTO3_VERSION" >&2
  touch "$stamp"
else
  log "aws-cli and boto3 present in $venv"
fi
echo "export PW_AWS_CLI=$venv/bin/aws"
echo "export PW_PYTHON=$venv/bin/python"
