#!/usr/bin/env bash
# The local cluster's one real node, beside the kwok nodes: containerd + runc + the CNI bridge
# plugin (Debian packages), and kubelet, kube-proxy (iptables mode) and CoreDNS built from their Go
# modules by hack/build-tools.sh. It runs the project's real images (hack/images.sh), so requests,
# probes, draining and traffic splits on it are real.
#
#   hack/node.sh up CLUSTER_DIR     start the node for the kwokctl cluster in CLUSTER_DIR (or reuse it)
#   hack/node.sh down               stop it and undo every change it made to the host
#   hack/node.sh status             exit 0 when every node process runs
#
# Only workloads that ask for the node land on it: it is labelled and tainted
# node.modelship.dev/real=true. Pods get addresses on a bridge of our own (msbr0, 10.244.0.0/24)
# and cannot send anything off this machine: a FORWARD rule drops whatever leaves the bridge, and the
# Service range is routed onto the bridge, so even an address kube-proxy has not translated yet
# stays local. CoreDNS serves only cluster.local, from the host's side of the bridge.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
source "$here/versions.env"
bin="$("$here/build-tools.sh" --print)"
cache_root="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}"

NODE_NAME=modelship-real-0
BRIDGE=msbr0
POD_SUBNET=10.244.0.0/24
NODE_IP=10.244.0.1
# hack/cluster.sh sets both ranges. The Service range is routed onto the bridge (see above); a
# packet to a simulated pod (a Service of kwok pods) is dropped on the host.
SERVICE_CIDR=10.96.0.0/16
KWOK_POD_CIDR=10.112.0.0/12
KUBELET_PORT=10350

state=/var/lib/modelship/node
run=/run/modelship
sock="$run/containerd/containerd.sock"
logs="$cache_root/logs/node"
etc="$state/etc"
# Kept apart from $state: `down` must read it after the node's state is gone.
host_state=/var/lib/modelship-host

log() { printf '[node] %s\n' "$*" >&2; }

ensure_packages() {
  local missing=() p
  for p in containerd:containerd runc:runc conntrack:conntrack iptables:iptables ip:iproute2; do
    command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
  done
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} from Debian"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A process the node needs, restarted when it exits (as a kubelet restarts static pods), in its
# own session so `down` can stop it with everything it started.
supervise() {  # name command...
  local name="$1"
  shift
  local pidfile="$run/node/$name.pid"
  if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    return 0
  fi
  setsid bash -c 'while :; do "$@"; echo "[supervisor] exited with $?, restarting in 1s" >&2; sleep 1; done' \
    "$name" "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

running() { [[ -s "$run/node/$1.pid" ]] && kill -0 "$(cat "$run/node/$1.pid")" 2>/dev/null; }

status() {
  local n
  for n in containerd kubelet kube-proxy coredns; do running "$n" || return 1; done
}

network_up() {
  # The host's own settings, put back by `down`.
  if [[ ! -s "$host_state/ip_forward" ]]; then
    mkdir -p "$host_state"
    cat /proc/sys/net/ipv4/ip_forward >"$host_state/ip_forward"
    cat /proc/sys/net/bridge/bridge-nf-call-iptables >"$host_state/bridge-nf-call-iptables"
  fi
  echo 1 >/proc/sys/net/ipv4/ip_forward
  # Bridged traffic between two pods of a Service must pass kube-proxy's rules too.
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NODE_IP/${POD_SUBNET#*/}" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  ip route replace blackhole "$KWOK_POD_CIDR"
  iptables -w -N MODELSHIP-EGRESS 2>/dev/null || true
  iptables -w -F MODELSHIP-EGRESS
  iptables -w -A MODELSHIP-EGRESS -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
  iptables -w -C FORWARD -j MODELSHIP-EGRESS 2>/dev/null || iptables -w -I FORWARD 1 -j MODELSHIP-EGRESS
  iptables -w -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null ||
    iptables -w -A FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
}

write_configs() {  # cluster_dir
  local cluster_dir="$1"
  local pki="$cluster_dir/pki"
  mkdir -p "$etc/cni" "$state/cni-ipam" "$state/kubelet" "$state/containerd"
  # The node's processes use the cluster's admin identity: this is a test cluster on one host, and
  # the Node authorizer is not enabled by kwokctl.
  local server
  server="$(kubectl --kubeconfig "$cluster_dir/kubeconfig.yaml" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  cat >"$etc/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}
users:
- name: node
  user: {client-certificate: "$pki/admin.crt", client-key: "$pki/admin.key"}
contexts:
- name: node
  context: {cluster: local, user: node}
current-context: node
EOF
  cat >"$etc/containerd.toml" <<EOF
version = 2
root = "$state/containerd"
state = "$run/containerd"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # The VM's bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$etc/cni"
EOF
  cat >"$etc/cni/10-modelship.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelship",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$state/cni-ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  # Pods resolve names through CoreDNS only; it knows nothing outside cluster.local.
  printf 'nameserver %s\n' "$NODE_IP" >"$etc/resolv.conf"
  cat >"$etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
healthzBindAddress: 127.0.0.1
healthzPort: 10348
readOnlyPort: 0
containerRuntimeEndpoint: unix://$sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $etc/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
# Imported images cannot be pulled again: never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%"}
serializeImagePulls: false
maxPods: 110
registerWithTaints:
- {key: node.modelship.dev/real, value: "true", effect: NoSchedule}
EOF
  cat >"$etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $etc/kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: 10.244.0.0/16
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:10349
healthzBindAddress: 127.0.0.1:10356
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 0s}
EOF
  cat >"$etc/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $etc/kubeconfig node
        pods insecure
    }
    cache 5
}
EOF
}

wait_for() {  # seconds description command...
  local seconds="$1" what="$2"
  shift 2
  local i
  for ((i = 0; i < seconds * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "timed out after ${seconds}s waiting for $what; last lines of the node logs:"
  tail -n 20 "$logs"/*.log >&2 || true
  return 1
}

up() {
  local cluster_dir="$1"
  local kubectl=(kubectl --kubeconfig "$cluster_dir/kubeconfig.yaml")
  if status && "${kubectl[@]}" get node "$NODE_NAME" >/dev/null 2>&1; then
    log "reusing the running real node $NODE_NAME"
    # Images rebuilt since (changed sources) replace the ones the node has; unchanged ones are skipped.
    MODELSHIP_CONTAINERD_ADDRESS="$sock" "$here/images.sh" import >&2
    return 0
  fi
  ensure_packages
  # Leftovers of a node whose processes died (a reboot, a killed session) are cleared first.
  down >/dev/null 2>&1 || true
  mkdir -p "$run/node" "$logs"
  : >"$logs/containerd.log"
  : >"$logs/kubelet.log"
  : >"$logs/kube-proxy.log"
  : >"$logs/coredns.log"
  network_up
  write_configs "$cluster_dir"
  log "starting containerd, kubelet, kube-proxy and CoreDNS for $NODE_NAME"
  supervise containerd containerd --config "$etc/containerd.toml"
  wait_for 30 containerd ctr --address "$sock" version
  MODELSHIP_CONTAINERD_ADDRESS="$sock" "$here/images.sh" import >&2
  supervise kubelet "$bin/kubelet" --config "$etc/kubelet.yaml" --kubeconfig "$etc/kubeconfig" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$state/kubelet" \
    --cert-dir "$state/kubelet/pki" --node-labels node.modelship.dev/real=true --v 1
  supervise kube-proxy "$bin/kube-proxy" --config "$etc/kube-proxy.yaml" --v 1
  supervise coredns "$bin/coredns" -conf "$etc/Corefile"
  wait_for 90 "node $NODE_NAME Ready" \
    "${kubectl[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
  log "real node $NODE_NAME is Ready"
}

# Undo, in reverse order, everything `up` did to the host; safe to run when nothing is up.
down() {
  local f
  # Supervisors first, so nothing restarts what is stopped next.
  for f in "$run"/node/*.pid; do
    [[ -s "$f" ]] || continue
    kill -TERM -- "-$(cat "$f")" 2>/dev/null || true
  done
  sleep 1
  for f in "$run"/node/*.pid; do
    [[ -s "$f" ]] || continue
    kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  # Containers: their shims were started by containerd with our socket in their command line.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  local cg
  for cg in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$cg" ]] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  sleep 0.5
  for cg in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$cg" ]] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # Mounts under our directories (rootfs, volumes, tokens, shm), deepest first; then CNI's netns.
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk '{print $2}' /proc/mounts | { grep -E "^(/var/lib/modelship|$run|/run/netns/cni-|/var/run/netns/cni-)" || true; } | sort -r)
  for f in /run/netns/cni-*; do
    [[ -e "$f" ]] && grep -q "$f" <(ip netns list 2>/dev/null | awk '{print "/run/netns/"$1}') && ip netns delete "${f##*/}" 2>/dev/null
    rm -f "$f" 2>/dev/null || true
  done
  # kube-proxy's and kubelet's chains, then ours.
  [[ -x "$bin/kube-proxy" ]] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  local table chain
  for table in filter nat mangle; do
    { iptables -w -t "$table" -S 2>/dev/null | grep -E -- '-j (KUBE-|MODELSHIP-)' || true; } | sed 's/^-A/-D/' |
      while read -r rule; do eval "iptables -w -t $table $rule" 2>/dev/null || true; done
    for chain in $(iptables -w -t "$table" -S 2>/dev/null | awk '/^-N (KUBE-|MODELSHIP-)/ {print $2}'); do
      iptables -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -w -t "$table" -S 2>/dev/null | awk '/^-N (KUBE-|MODELSHIP-)/ {print $2}'); do
      iptables -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  iptables -w -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null || true
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip route del blackhole "$KWOK_POD_CIDR" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  # A pod's veth goes with its network namespace, once no process or mount holds that.
  if [[ -s "$host_state/ip_forward" ]]; then
    cat "$host_state/ip_forward" >/proc/sys/net/ipv4/ip_forward
    cat "$host_state/bridge-nf-call-iptables" >/proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || true
  fi
  rm -rf /var/lib/modelship "$run" "$host_state"
}

case "${1:-}" in
  up) up "${2:?usage: $0 up CLUSTER_DIR}" ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up CLUSTER_DIR | down | status" >&2
    exit 2
    ;;
esac
