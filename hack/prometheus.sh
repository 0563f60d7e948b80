#!/usr/bin/env bash
# A real Prometheus for the local cluster, as a process on this machine (built from its Go module by
# hack/build-tools.sh). It finds the serving pods through the Kubernetes API (kubernetes_sd, pod
# role) and scrapes modelship-server's /metrics every 2 s, adding the `namespace` and `pod` labels
# that every Kubernetes scrape config adds. Canary analysis reads it (MODELSHIP_PROMETHEUS_URL).
#
#   hack/prometheus.sh up       start it, or keep the one running (idempotent)
#   hack/prometheus.sh stop     stop the process, keep its data (tests: "Prometheus went away")
#   hack/prometheus.sh down     stop it and delete its data
#   hack/prometheus.sh env      print the export of MODELSHIP_PROMETHEUS_URL
#   hack/prometheus.sh status   exit 0 when it answers ready
#
# MODELSHIP_PROMETHEUS_PORT (default 9090) selects an instance: a test that stops Prometheus runs a
# private one on another port, so other tests' analyses keep theirs. `down-all` removes every instance.
# It listens on the real node's bridge address (10.244.0.1), where both this machine and the pods
# on the real node reach it, and nowhere else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
bin="$("$here/build-tools.sh" --print)"
host=10.244.0.1
port="${MODELSHIP_PROMETHEUS_PORT:-9090}"
root="$cache_root/prometheus"
state="$root/$port"
url="http://$host:$port"
log() { printf '[prometheus] %s\n' "$*" >&2; }

kubeconfig() { "$here/cluster.sh" env | sed -n "s/^export KUBECONFIG='\(.*\)'/\1/p"; }

pid() { cat "$state/pid" 2>/dev/null || true; }

running() {
  local p
  p="$(pid)"
  [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null
}

ready() { curl -fsS --max-time 2 "$url/-/ready" >/dev/null 2>&1; }

render_config() {  # kubeconfig
  cat <<EOF
# Written by hack/prometheus.sh.
global:
  scrape_interval: 2s
  scrape_timeout: 1s
  evaluation_interval: 2s
scrape_configs:
  - job_name: modelship-serving
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $1
    relabel_configs:
      # Pods a ModelDeployment owns, on the real node: kwok's simulated pods have addresses that
      # lead nowhere, and a scrape of them would only ever time out.
      - source_labels: [__meta_kubernetes_pod_label_modelship_dev_model_deployment]
        regex: .+
        action: keep
      - source_labels: [__meta_kubernetes_pod_node_name]
        regex: modelship-real-0
        action: keep
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: http
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
EOF
}

start() {
  command -v curl >/dev/null || {
    log "installing curl from Debian (readiness checks)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
  }
  mkdir -p "$state/data"
  # Test sessions may start it side by side (one per pytest worker): one at a time.
  exec 9>"$state/.lock"
  flock 9
  local kc
  kc="$(kubeconfig)"
  [[ -s "$kc" ]] || {
    log "the local cluster is not up (no $kc): run 'make cluster' first"
    return 1
  }
  ip -4 addr show dev msbr0 2>/dev/null | grep -q "inet $host/" || {
    log "$host is not on this machine: the real node (hack/node.sh) is not up"
    return 1
  }
  local wanted
  wanted="$(render_config "$kc")"
  # A cluster recreated since the start has new certificates: the running process would keep
  # failing to list pods. Restart it whenever the config or the kubeconfig it reads changed.
  local id
  id="$(printf '%s\n' "$wanted" | cat - "$kc" | sha256sum | cut -d' ' -f1)"
  if running && ready && [[ "$(cat "$state/id" 2>/dev/null)" == "$id" ]]; then
    return 0
  fi
  stop
  printf '%s\n' "$wanted" >"$state/prometheus.yml"
  echo "$id" >"$state/id"
  log "starting Prometheus on $url"
  # 9>&-: the long-lived process must not hold the lock taken above.
  setsid "$bin/prometheus" --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="$host:$port" --log.level=warn \
    >>"$state/prometheus.log" 2>&1 </dev/null 9>&- &
  echo $! >"$state/pid"
  local i
  for ((i = 0; i < 120; i++)); do
    ready && return 0
    running || break
    sleep 0.25
  done
  log "Prometheus did not become ready; its log:"
  tail -20 "$state/prometheus.log" >&2
  return 1
}

stop() {
  local p i
  p="$(pid)"
  if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$state/pid"
}

down_all() {
  local dir
  for dir in "$root"/*/; do
    [[ -d "$dir" ]] || continue
    state="${dir%/}"
    stop
  done
  rm -rf "$root"
}

case "${1:-}" in
  up) start ;;
  stop) stop ;;
  down)
    stop
    rm -rf "$state"
    ;;
  down-all) down_all ;;
  env) echo "export MODELSHIP_PROMETHEUS_URL='$url'" ;;
  status) running && ready ;;
  *)
    echo "usage: $0 up|stop|down|down-all|env|status" >&2
    exit 2
    ;;
esac
