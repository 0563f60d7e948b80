#!/usr/bin/env bash
# Builds every binary the local cluster needs from its Go module, at the versions pinned in
# hack/versions.env, into a cache directory outside the repo that every clone and CI run reuses.
# Each binary carries a stamp of the version it was built from (bin/.NAME.version), so changing one
# pin rebuilds that tool alone.
#
#   hack/build-tools.sh            build what is missing, print the bin directory
#   hack/build-tools.sh --print    print the bin directory only (no build)
#   hack/build-tools.sh --gateway-api-crds   print the path of the Gateway API CRD bundle
#
# Why wrapper modules: k8s.io/kubernetes and etcd's server module replace their sibling modules
# with relative paths (./staging/..., ../api), which `go install pkg@version` refuses. A small
# module that requires them and points each replaced module at its published version builds the
# same code.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"

cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
tools="$cache_root/tools"
bin="$tools/bin"

case "${1:-}" in
  --print)
    echo "$bin"
    exit 0
    ;;
  --gateway-api-crds)
    echo "$tools/gateway-api-standard-${GATEWAY_API_VERSION}.yaml"
    exit 0
    ;;
esac

mkdir -p "$bin" "$tools/src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { printf '[tools] %s\n' "$*" >&2; }

# have NAME VERSION: the binary is there and was built from VERSION.
have() { [[ -x "$bin/$1" && "$(cat "$bin/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { local n; for n in "${@:2}"; do echo "$1" >"$bin/.$n.version"; done; }

build_kubernetes() {
  # The control plane and kubectl, and the real node's kubelet and kube-proxy, from one module.
  local names=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
  local missing=0 n
  for n in "${names[@]}"; do have "$n" "$KUBERNETES_VERSION" || missing=1; done
  ((missing)) || return 0
  log "building Kubernetes ${KUBERNETES_VERSION} (${names[*]}); the first build takes a while"
  local mod="$tools/src/kubernetes"
  mkdir -p "$mod"
  local staging="v0.${KUBERNETES_VERSION#v1.}"
  go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" >"$mod/download.json"
  local upstream_mod
  upstream_mod="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["GoMod"])' "$mod/download.json")"
  {
    echo "module modelship.dev/tools/kubernetes"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
    echo
    echo "replace ("
    # Every staging module kubernetes replaces locally becomes its published v0.x release.
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$upstream_mod" |
      awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$mod/go.mod"
  printf 'package tools\n' >"$mod/tools.go"
  local pkg=k8s.io/component-base/version
  local minor
  minor="$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  local ldflags="-s -w -X ${pkg}.gitVersion=${KUBERNETES_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags="$ldflags -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION}"
  (cd "$mod" && go get "k8s.io/kubernetes@${KUBERNETES_VERSION}" >/dev/null 2>&1 || true)
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy)
  stamp "$KUBERNETES_VERSION" "${names[@]}"
}

build_etcd() {
  have etcd "$ETCD_VERSION" && return 0
  log "building etcd ${ETCD_VERSION}"
  local mod="$tools/src/etcd"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<EOF
module modelship.dev/tools/etcd

go 1.24.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 ${ETCD_VERSION}
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 ${ETCD_VERSION}
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 ${ETCD_VERSION}
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 ${ETCD_VERSION}
)
EOF
  printf 'package tools\n' >"$mod/tools.go"
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1 || true)
  (cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
  stamp "$ETCD_VERSION" etcd
}

build_plain() {  # name module-package version
  have "$1" "$3" && return 0
  log "building $1 $3"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" "$2@$3"
  stamp "$3" "$1"
}

build_prometheus() {
  # Only Kubernetes service discovery (the local cluster's serving pods): leaving out the cloud
  # providers' SDKs roughly halves the build. No embedded web UI; the HTTP API is what is used.
  have prometheus "$PROMETHEUS_VERSION" && return 0
  log "building Prometheus $PROMETHEUS_VERSION (Kubernetes service discovery only)"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" -tags remove_all_sd,enable_kubernetes_sd \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
  stamp "$PROMETHEUS_VERSION" prometheus
}

fetch_gateway_api_crds() {
  local out="$tools/gateway-api-standard-${GATEWAY_API_VERSION}.yaml"
  [[ -s "$out" ]] && return 0
  log "fetching Gateway API ${GATEWAY_API_VERSION} standard CRDs from its Go module"
  local dir
  dir="$(go mod download -json "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  local f tmp="$out.tmp"
  : >"$tmp"
  for f in "$dir"/config/crd/standard/*.yaml; do
    printf -- '---\n' >>"$tmp"
    cat "$f" >>"$tmp"
  done
  mv "$tmp" "$out"
}

build_kubernetes
build_etcd
build_plain kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
build_plain kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$KWOK_VERSION"
build_plain helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
build_plain coredns github.com/coredns/coredns "$COREDNS_VERSION"
build_prometheus
fetch_gateway_api_crds
echo "$bin"
