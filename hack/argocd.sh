#!/usr/bin/env bash
# Argo CD on the local cluster, as processes on this machine (no images): the application
# controller, the repo server and the API server, all one `argocd` binary built by
# hack/build-argocd.sh, with Debian's redis-server as their cache. Installed the way a platform
# team installs it: Argo CD's own CRDs (from its Go module), an argocd-cm patched with
# argocd/argocd-cm.yaml, and the default AppProject.
#
#   hack/argocd.sh up       start it against the running local cluster (idempotent; re-applies
#                           argocd/argocd-cm.yaml, so edited Lua is picked up)
#   hack/argocd.sh down     stop every process, delete Argo CD's namespace, CRDs and local state
#   hack/argocd.sh env      print shell exports for the argocd CLI (ARGOCD_SERVER, ARGOCD_OPTS)
#   hack/argocd.sh status   exit 0 when every process runs and the API server answers
#
# Why the API server: the CLI's core mode (--core) reaches Argo CD's Redis and repo server by
# port-forwarding to their pods, and here they are processes, not pods. The API server runs with
# --disable-auth on a loopback port: a local test rig, not an install to copy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
bin="$("$here/build-argocd.sh" --print)"
state="$cache_root/argocd"
namespace=argocd
# Loopback ports of our choosing, away from the defaults (6379, 8080-8084) a developer may run.
redis_port="${MODELSHIP_ARGOCD_REDIS_PORT:-26379}"
api_port="${MODELSHIP_ARGOCD_API_PORT:-28080}"
repo_port="${MODELSHIP_ARGOCD_REPO_PORT:-28081}"
controller_metrics="${MODELSHIP_ARGOCD_CONTROLLER_METRICS_PORT:-28082}"
api_metrics="${MODELSHIP_ARGOCD_API_METRICS_PORT:-28083}"
repo_metrics="${MODELSHIP_ARGOCD_REPO_METRICS_PORT:-28084}"
components=(redis argocd-repo-server argocd-application-controller argocd-server)

export PATH="$bin:$PATH"
eval "$("$here/cluster.sh" env)"
log() { printf '[argocd] %s\n' "$*" >&2; }
k() { kubectl --request-timeout=30s "$@"; }

pid_of() { cat "$state/$1.pid" 2>/dev/null || true; }

running() {
  local pid
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# wait_until WHAT SECONDS COMMAND...: polls COMMAND until it succeeds; fails with WHAT and the log.
wait_until() {
  local what="$1" seconds="$2" i
  shift 2
  for ((i = 0; i < seconds * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "timed out after ${seconds}s waiting for $what"
  return 1
}

start() {  # name command...: runs it in its own session, logging to $state/name.log
  local name="$1"
  shift
  if running "$name"; then
    return 0
  fi
  log "starting $name"
  # 9>&-: the long-lived process must not inherit (and so hold) the lock taken in up().
  setsid "$@" >>"$state/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$state/$name.pid"
}

install() {
  k create namespace "$namespace" --dry-run=client -o yaml | k apply -f - >/dev/null
  local crds f
  crds="$("$here/build-argocd.sh" --crds)"
  for f in application-crd.yaml applicationset-crd.yaml appproject-crd.yaml; do
    k apply --server-side --force-conflicts -f "$crds/$f" >/dev/null
  done
  # Right after the apply a CRD may have no conditions yet, which kubectl wait takes as an error.
  wait_until "Argo CD's CRDs" 60 k wait --for=condition=Established --timeout=5s \
    crd/applications.argoproj.io crd/appprojects.argoproj.io
  # argocd-cm as Argo CD's install manifest creates it, then our patch, as argocd/README.md says.
  k -n "$namespace" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  labels: {app.kubernetes.io/name: argocd-cm, app.kubernetes.io/part-of: argocd}
EOF
  k -n "$namespace" patch configmap argocd-cm --type merge --patch-file "$repo/argocd/argocd-cm.yaml" >/dev/null
  if ! k -n "$namespace" get secret argocd-secret >/dev/null 2>&1; then
    k -n "$namespace" create secret generic argocd-secret \
      --from-literal=server.secretkey="$(head -c 32 /dev/urandom | base64)" >/dev/null
    k -n "$namespace" label secret argocd-secret app.kubernetes.io/part-of=argocd >/dev/null
  fi
  k -n "$namespace" apply -f - >/dev/null <<EOF
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: default
spec:
  sourceRepos: ["*"]
  destinations: [{namespace: "*", server: "*"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
EOF
}

# Redis for Argo CD's cache, git for the repo server, curl for the readiness checks: Debian's.
ensure_packages() {
  local missing=() p
  for p in redis-server:redis-server redis-cli:redis-tools git:git curl:curl flock:util-linux; do
    command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} from Debian"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

up() {
  ensure_packages
  "$here/build-argocd.sh" >/dev/null
  "$here/cluster.sh" status || {
    log "the local cluster does not answer: run 'make cluster' first"
    return 1
  }
  mkdir -p "$state/redis" "$state/tmp" "$state/ssh" "$state/tls" "$state/gpg"
  # Test sessions start it side by side (one per pytest worker): one at a time.
  exec 9>"$state/.lock"
  flock 9
  # Processes started for an earlier cluster (recreated since: new ports, new certificates) would
  # keep talking to it: they are restarted when the cluster's kubeconfig changed.
  local cluster_id
  cluster_id="$(sha256sum "$("$here/cluster.sh" env | sed -n "s/^export KUBECONFIG='\(.*\)'/\1/p")" | cut -d' ' -f1)"
  if [[ "$(cat "$state/cluster-id" 2>/dev/null)" != "$cluster_id" ]]; then
    local i
    for ((i = ${#components[@]} - 1; i >= 0; i--)); do
      stop_process "${components[$i]}"
    done
    echo "$cluster_id" >"$state/cluster-id"
  fi
  install
  # The in-cluster destination (https://kubernetes.default.svc) from the kubeconfig, as Argo CD's
  # own local development and core mode do.
  export ARGOCD_FAKE_IN_CLUSTER=true TMPDIR="$state/tmp"
  # Paths the container image provides under /app/config; here they live in our state directory.
  export ARGOCD_GPG_ENABLED=false ARGOCD_SSH_DATA_PATH="$state/ssh" ARGOCD_TLS_DATA_PATH="$state/tls" \
    ARGOCD_GPG_DATA_PATH="$state/gpg"
  local common=(--loglevel info --redis "127.0.0.1:$redis_port")
  start redis redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
    --dir "$state/redis"
  wait_until "redis on port $redis_port" 30 redis-cli -p "$redis_port" ping
  start argocd-repo-server argocd-repo-server "${common[@]}" --disable-tls \
    --address 127.0.0.1 --port "$repo_port" --metrics-address 127.0.0.1 --metrics-port "$repo_metrics"
  wait_until "the repo server" 60 curl -fsS "http://127.0.0.1:$repo_metrics/healthz"
  local repo_server=(--repo-server "127.0.0.1:$repo_port" --repo-server-plaintext)
  # --app-resync: how often Argo CD looks at git unprompted (default 3 minutes); the tests
  # still ask for a refresh after each commit, as a git webhook would.
  start argocd-application-controller argocd-application-controller "${common[@]}" "${repo_server[@]}" \
    --namespace "$namespace" --metrics-port "$controller_metrics" --app-resync 15 \
    --status-processors 4 --operation-processors 4
  wait_until "the application controller" 60 curl -fsS "http://127.0.0.1:$controller_metrics/healthz"
  start argocd-server argocd-server "${common[@]}" "${repo_server[@]}" --namespace "$namespace" \
    --insecure --disable-auth --address 127.0.0.1 --port "$api_port" --metrics-port "$api_metrics" \
    --dex-server ""
  wait_until "the API server" 60 curl -fsS "http://127.0.0.1:$api_port/healthz"
  log "Argo CD is up: eval \"\$(hack/argocd.sh env)\"; logs in $state"
}

stop_process() {
  local name="$1" pid i
  pid="$(pid_of "$name")"
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$name.pid"
}

down() {
  if "$here/cluster.sh" status; then
    # Applications may carry Argo CD's finalizer, which nothing would remove once it stops.
    local ns app
    while read -r ns app; do
      [[ -n "$app" ]] || continue
      k -n "$ns" patch application.argoproj.io "$app" --type merge \
        -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
    done < <(k get applications.argoproj.io -A --no-headers \
      -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name 2>/dev/null || true)
    k delete namespace "$namespace" --ignore-not-found --timeout=120s >/dev/null || true
    k delete crd --ignore-not-found applications.argoproj.io applicationsets.argoproj.io \
      appprojects.argoproj.io >/dev/null || true
  fi
  local i
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    stop_process "${components[$i]}"
  done
  rm -rf "$state"
}

status() {
  local c
  for c in "${components[@]}"; do
    running "$c" || return 1
  done
  curl -fsS "http://127.0.0.1:$api_port/healthz" >/dev/null
}

env_exports() {
  echo "export ARGOCD_SERVER='127.0.0.1:$api_port'"
  # The API server runs without auth on loopback; the CLI still wants a token to send.
  echo "export ARGOCD_OPTS='--plaintext --auth-token unused'"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_exports ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|env|status" >&2
    exit 2
    ;;
esac
