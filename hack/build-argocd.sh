#!/usr/bin/env bash
# Builds Argo CD from its Go module, at the version pinned in hack/versions.env, into the same tools
# cache as hack/build-tools.sh. One `argocd` binary serves every component: it picks one by the
# name it is started under (cmd/main.go), so the application controller, the repo server and the
# API server are symlinks to it. Beside it, argocd-lua (hack/argocd-lua): a small program on Argo
# CD's util/lua package that runs our argocd-cm Lua on given objects, built in the same module
# graph. Each carries a stamp (bin/.NAME.version) like the other tools.
#
#   hack/build-argocd.sh            build what is missing, print the bin directory
#   hack/build-argocd.sh --print    print the bin directory only (no build)
#   hack/build-argocd.sh --crds     print the directory of Argo CD's own CRDs (from the module)
#
# Built through a wrapper module (hack/go-wrapper.sh says why).
# Why v3.2: from v3.3 on, argo-cd replaces gitops-engine with an in-repo directory that its module
# zip does not carry (and from v3.4 on requires a gitops-engine/v3 module that does not resolve);
# v3.2 requires a published gitops-engine pseudo-version, so every line of its graph is a download.
# Not v3.2.12: its module calls settings.ValidateExternalURL, which that release does not define
# (controller/cache/info.go does not compile); v3.2.11 builds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"
# shellcheck source=hack/go-wrapper.sh
source "$here/go-wrapper.sh"

cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
tools="$cache_root/tools"
bin="$tools/bin"
module="github.com/argoproj/argo-cd/v3"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf '[argocd] %s\n' "$*" >&2; }

case "${1:-}" in
  --print)
    echo "$bin"
    exit 0
    ;;
  --crds)
    echo "$(go_module_dir "$module" "$ARGOCD_VERSION")/manifests/crds"
    exit 0
    ;;
esac

mkdir -p "$bin" "$tools/src"

have() { [[ -x "$bin/$1" && "$(cat "$bin/.$1.version" 2>/dev/null)" == "$2" ]]; }

link_components() {
  local n
  for n in argocd-application-controller argocd-repo-server argocd-server; do
    ln -sfn argocd "$bin/$n"
  done
}

mod="$tools/src/argocd"
harness="$here/argocd-lua/main.go"
# The harness is rebuilt when Argo CD's pin or its source changes.
harness_stamp="$ARGOCD_VERSION $(sha256sum "$harness" | cut -c1-16)"

build_harness() {
  have argocd-lua "$harness_stamp" && return 0
  log "building argocd-lua against Argo CD ${ARGOCD_VERSION}"
  mkdir -p "$mod/argocd-lua"
  cp "$harness" "$mod/argocd-lua/main.go"
  (cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$bin/argocd-lua" ./argocd-lua)
  echo "$harness_stamp" >"$bin/.argocd-lua.version"
}

if have argocd "$ARGOCD_VERSION"; then
  link_components
  build_harness
  echo "$bin"
  exit 0
fi

log "building Argo CD ${ARGOCD_VERSION}; the first build takes a while"
write_wrapper_module "$mod" argocd "$module" "$ARGOCD_VERSION" 1.25.5
ldflags="$(release_ldflags "${module}/common" "$ARGOCD_VERSION")"
(cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$bin/argocd" "${module}/cmd")
echo "$ARGOCD_VERSION" >"$bin/.argocd.version"
link_components
build_harness
echo "$bin"
