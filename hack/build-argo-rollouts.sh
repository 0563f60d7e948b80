#!/usr/bin/env bash
# Builds the Argo Rollouts controller from its Go module, at the version pinned in hack/versions.env,
# into the same tools cache as hack/build-tools.sh (stamp bin/.rollouts-controller.version). It is
# the reference `make bench-operator` runs beside Modelship's operator.
#
#   hack/build-argo-rollouts.sh          build what is missing, print the bin directory
#   hack/build-argo-rollouts.sh --print  print the bin directory only (no build)
#   hack/build-argo-rollouts.sh --crds   print the directory of Argo Rollouts' CRDs (from the module)
#
# Built through a wrapper module (hack/go-wrapper.sh says why).
# Why v1.10.1: v1.10.2 (and v1.9.3) ask for go >= 1.26.10, newer than the toolchain here.
# The build runs under `nice -n 19`: it competes for the same cores as everyone's tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"
# shellcheck source=hack/go-wrapper.sh
source "$here/go-wrapper.sh"

cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
tools="$cache_root/tools"
bin="$tools/bin"
module="github.com/argoproj/argo-rollouts"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf '[argo-rollouts] %s\n' "$*" >&2; }

case "${1:-}" in
  --print)
    echo "$bin"
    exit 0
    ;;
  --crds)
    echo "$(go_module_dir "$module" "$ARGO_ROLLOUTS_VERSION")/manifests/crds"
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
write_wrapper_module "$mod" argo-rollouts "$module" "$ARGO_ROLLOUTS_VERSION"
ldflags="$(release_ldflags "${module}/utils/version" "$ARGO_ROLLOUTS_VERSION")"
(cd "$mod" && nice -n 19 go build -p 1 -trimpath -ldflags "$ldflags" -o "$bin/rollouts-controller" \
  "${module}/cmd/rollouts-controller")
echo "$ARGO_ROLLOUTS_VERSION" >"$bin/.rollouts-controller.version"
echo "$bin"
