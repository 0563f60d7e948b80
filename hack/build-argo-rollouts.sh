#!/usr/bin/env bash
# Builds the Argo Rollouts controller from its Go module, at the version pinned in hack/versions.env,
# into the same tools cache as hack/build-tools.sh (stamp bin/.rollouts-controller.version). It is
# the reference `make bench-operator` runs beside Modelship's operator.
#
#   hack/build-argo-rollouts.sh          build what is missing, print the bin directory
#   hack/build-argo-rollouts.sh --print  print the bin directory only (no build)
#   hack/build-argo-rollouts.sh --crds   print the directory of Argo Rollouts' CRDs (from the module)
#
# Why a wrapper module: argo-rollouts' go.mod replaces the k8s.io staging modules with published
# versions; replace directives only count in the main module, so a module that requires
# argo-rollouts and copies them builds the graph Argo Rollouts' own release does.
# Why v1.10.1: v1.10.2 (and v1.9.3) ask for go >= 1.26.10, newer than the toolchain here.
# The build runs under `nice -n 19`: it competes for the same cores as everyone's tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
tools="$cache_root/tools"
bin="$tools/bin"
module="github.com/argoproj/argo-rollouts"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf '[argo-rollouts] %s\n' "$*" >&2; }

module_dir() {
  go mod download -json "${module}@${ARGO_ROLLOUTS_VERSION}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

case "${1:-}" in
  --print)
    echo "$bin"
    exit 0
    ;;
  --crds)
    echo "$(module_dir)/manifests/crds"
    exit 0
    ;;
esac

mkdir -p "$bin" "$tools/src"
if [[ -x "$bin/rollouts-controller" && "$(cat "$bin/.rollouts-controller.version" 2>/dev/null)" == "$ARGO_ROLLOUTS_VERSION" ]]; then
  echo "$bin"
  exit 0
fi

log "building the Argo Rollouts controller ${ARGO_ROLLOUTS_VERSION}; the first build takes a while"
mod="$tools/src/argo-rollouts"
mkdir -p "$mod"
go mod download -json "${module}@${ARGO_ROLLOUTS_VERSION}" >"$mod/download.json"
upstream_mod="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$mod/download.json")"
{
  echo "module modelship.dev/tools/argo-rollouts"
  echo
  echo "go $(sed -n 's/^go //p' "$upstream_mod")"
  echo
  echo "require ${module} ${ARGO_ROLLOUTS_VERSION}"
  echo
  echo "replace ("
  # Every replace that points at a published version (module => module version).
  sed -n '/^replace (/,/^)/p' "$upstream_mod" |
    grep -E '^\s*[^ /]+\.[^ ]+ => [^ .][^ ]* v[0-9][^ ]*\s*$' |
    sed -E 's/^\s*/\t/'
  echo ")"
} >"$mod/go.mod"
printf 'package tools\n' >"$mod/tools.go"
rm -f "$mod/go.sum"
(cd "$mod" && go get "${module}@${ARGO_ROLLOUTS_VERSION}" >/dev/null 2>&1 || true)
pkg="${module}/utils/version"
ldflags="-s -w -X ${pkg}.version=${ARGO_ROLLOUTS_VERSION#v} -X ${pkg}.gitTag=${ARGO_ROLLOUTS_VERSION}"
ldflags="$ldflags -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
(cd "$mod" && nice -n 19 go build -p 1 -trimpath -ldflags "$ldflags" -o "$bin/rollouts-controller" \
  "${module}/cmd/rollouts-controller")
echo "$ARGO_ROLLOUTS_VERSION" >"$bin/.rollouts-controller.version"
echo "$bin"
