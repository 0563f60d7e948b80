#!/usr/bin/env bash
# The local cluster: a real kube-apiserver, etcd, kube-controller-manager and kube-scheduler run
# as processes by kwokctl, with kwok simulating most nodes and their pods' lifecycles, and one
# real node (hack/node.sh: containerd, kubelet, kube-proxy, CoreDNS) that runs the project's
# images. No Docker.
#
# Addresses: Services 10.96.0.0/16, kwok's simulated pods 10.112.0.0/12, the real node's pods
# 10.244.0.0/24 on a bridge of ours; none overlaps another, and none leaves this machine.
#
#   hack/cluster.sh up      start it, or reuse the one already running (idempotent)
#   hack/cluster.sh down    stop it and delete its state
#   hack/cluster.sh env     print the shell exports that point tools at it
#   hack/cluster.sh status  exit 0 when it answers
#
# A supervisor (hack/supervise.py, log: <cluster dir>/supervisor.log) restarts any control-plane
# process that exits, as a kubelet restarts static pods.
#
# MODELSHIP_CLUSTER_NAME picks the cluster (default modelship). MODELSHIP_REAL_NODE=0 (the default
# for any other name) leaves out the real node and advertises 127.0.0.1: the fault tests run such
# a kwok-only cluster of their own (modelship-faults), whose apiserver and etcd they restart and
# freeze without touching the shared one. MODELSHIP_CLUSTER_PORT_BASE=N gives its components the
# fixed ports N+1..N+6 (the default cluster lets kwokctl pick free ones).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"
bin="$("$here/build-tools.sh" --print)"
cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"
name="${MODELSHIP_CLUSTER_NAME:-modelship}"
python="${MODELSHIP_PYTHON:-$repo/.venv/bin/python}"
nodes="${MODELSHIP_CLUSTER_NODES:-3}"
# Only the default cluster has the real node (there is one); another name never touches it.
default_real_node=0
[[ "$name" == modelship ]] && default_real_node=1
real_node="${MODELSHIP_REAL_NODE:-$default_real_node}"
port_base="${MODELSHIP_CLUSTER_PORT_BASE:-}"

export KWOK_WORKDIR="$cache_root/kwok"
export KWOK_KUBE_VERSION="$KUBERNETES_VERSION"
export PATH="$bin:$PATH"
cluster_dir="$KWOK_WORKDIR/clusters/$name"
kubeconfig="$cluster_dir/kubeconfig.yaml"
log() { printf '[cluster] %s\n' "$*" >&2; }
supervisor_pid_file="$cluster_dir/supervisor.pid"

with_real_node() { [[ "$real_node" != 0 ]]; }

supervisor_running() {
  local pid
  pid="$(cat "$supervisor_pid_file" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q supervise.py "/proc/$pid/cmdline" 2>/dev/null
}

supervisor_start() {
  supervisor_running && return 0
  # setsid and no inherited pipes: a caller that captures this script's output (a test's
  # subprocess.run) must not wait on the supervisor.
  setsid "$python" "$here/supervise.py" "$cluster_dir" </dev/null >>"$cluster_dir/supervisor.log" 2>&1 &
  echo $! >"$supervisor_pid_file"
}

# Before the components stop: otherwise it would start them again.
supervisor_stop() {
  local pid i
  supervisor_running || return 0
  pid="$(cat "$supervisor_pid_file")"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$supervisor_pid_file"
}

answers() {
  [[ -s "$kubeconfig" ]] && kubectl --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# Every process of the cluster runs, not only the apiserver: a controller-manager that lost its
# lease and exited leaves an apiserver that answers and a cluster that does nothing.
healthy() {
  answers || return 1
  local c
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller; do
    pgrep -f "$c.*$cluster_dir/" >/dev/null || {
      log "$c is not running"
      return 1
    }
  done
  if with_real_node; then
    "$here/node.sh" status || {
      log "the real node is not running"
      return 1
    }
  fi
}

add_nodes() {
  local i
  for ((i = 0; i < nodes; i++)); do
    kubectl --kubeconfig "$kubeconfig" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    type: kwok
spec: {}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "250"}
  capacity: {cpu: "64", memory: 256Gi, pods: "250"}
  nodeInfo: {architecture: amd64, kubeletVersion: fake, operatingSystem: linux}
EOF
  done
}

# The cluster's configuration: kwok's stages (hack/kwok_stages.py) and our component settings.
render_config() {  # out
  local out="$1"
  local kwok_dir
  kwok_dir="$(cd "$here" && go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" |
    "$python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  "$python" "$here/kwok_stages.py" "$kwok_dir" "$out"
  # The real node's needs (hack/node.sh): kwok leaves it alone; the apiserver reaches its kubelet
  # (logs, exec) with a client certificate; pods on it reach the apiserver by the kubernetes
  # Service's address, so that address is in the serving certificate. Without a real node the
  # apiserver advertises 127.0.0.1 (the bridge address may not exist).
  local advertise=10.244.0.1 ports=""
  with_real_node || advertise=127.0.0.1
  if [[ -n "$port_base" ]]; then
    ports="
  kubeSchedulerPort: $((port_base + 1))
  kubeControllerManagerPort: $((port_base + 2))
  kwokControllerPort: $((port_base + 3))
  kubeApiserverPort: $((port_base + 4))
  etcdPort: $((port_base + 5))
  etcdPeerPort: $((port_base + 6))"
  fi
  cat >>"$out" <<EOF
---
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  kubeApiserverCertSANs: ["10.96.0.1", "10.244.0.1"]$ports
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - {key: service-cluster-ip-range, value: 10.96.0.0/16}
  - {key: advertise-address, value: $advertise}
  - {key: kubelet-preferred-address-types, value: InternalIP}
  - {key: kubelet-client-certificate, value: $cluster_dir/pki/admin.crt}
  - {key: kubelet-client-key, value: $cluster_dir/pki/admin.key}
- name: kube-controller-manager
  extraArgs:
  # It makes every ReplicaSet and pod, for whichever controller asks: at its default 20 requests/s
  # 5000 pods took 251 s and 1000 ModelDeployments waited on it, not on the operator (bench/operator).
  - {key: kube-api-qps, value: "200"}
  - {key: kube-api-burst, value: "400"}
- name: kwok-controller
  extraArgs:
  - {key: cidr, value: 10.112.0.0/12}
  - {key: manage-all-nodes, value: "false"}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
EOF
}

up() {
  "$here/build-tools.sh" >/dev/null
  local config="$cache_root/kwok-$name-config.yaml" wanted
  mkdir -p "$cache_root"
  wanted="$(mktemp "$cache_root/kwok-$name-config.XXXXXX")"
  # Gone however this ends (it is moved into place below when the cluster is recreated).
  trap "rm -f '$wanted'" EXIT
  render_config "$wanted"
  if healthy; then
    if cmp -s "$wanted" "$config"; then
      rm -f "$wanted"
      log "reusing the running cluster '$name'"
      supervisor_start
      if with_real_node; then "$here/node.sh" up "$cluster_dir"; fi
      return 0
    fi
    # A running cluster with other stages or settings would pass tests for the wrong reason.
    log "the cluster's configuration changed: recreating it"
    if with_real_node; then "$here/node.sh" down; fi
  fi
  mv "$wanted" "$config"
  # A cluster whose processes died (a reboot, a killed session) cannot be restarted cleanly:
  # start from scratch. Its state only ever holds test objects.
  supervisor_stop
  kwokctl --name "$name" delete cluster >/dev/null 2>&1 || true
  log "starting kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok ($KUBERNETES_VERSION)"
  kwokctl --name "$name" --config "$config" create cluster \
    --runtime binary \
    --kubeconfig "" \
    --kube-apiserver-binary "$bin/kube-apiserver" \
    --kube-controller-manager-binary "$bin/kube-controller-manager" \
    --kube-scheduler-binary "$bin/kube-scheduler" \
    --kwok-controller-binary "$bin/kwok" \
    --etcd-binary "$bin/etcd" \
    --wait 120s >&2
  add_nodes
  kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node -l type=kwok --timeout=60s >/dev/null
  # Gateway API (standard channel) for canary rollouts with exact traffic weights.
  kubectl --kubeconfig "$kubeconfig" apply --server-side -f "$("$here/build-tools.sh" --gateway-api-crds)" >/dev/null
  # The default ServiceAccount appears once the controller-manager runs; pods need it.
  local i
  for ((i = 0; i < 60; i++)); do
    kubectl --kubeconfig "$kubeconfig" -n default get serviceaccount default >/dev/null 2>&1 && break
    sleep 1
  done
  supervisor_start
  if with_real_node; then "$here/node.sh" up "$cluster_dir"; fi
  log "cluster '$name' is up: export KUBECONFIG=$kubeconfig"
}

down() {
  if with_real_node; then "$here/node.sh" down; fi
  supervisor_stop
  kwokctl --name "$name" delete cluster >&2 || true
  # The configuration `up` compared against, and any candidate an interrupted `up` left behind.
  rm -f "$cache_root/kwok-$name-config".*
}

env_exports() {
  echo "export KUBECONFIG='$kubeconfig'"
  echo "export PATH='$bin:$repo/.venv/bin':\"\$PATH\""
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_exports ;;
  status) answers ;;
  *)
    echo "usage: $0 up|down|env|status" >&2
    exit 2
    ;;
esac
