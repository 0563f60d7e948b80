#!/usr/bin/env bash
# `make demo`: on the local cluster, install the CRD, start the operator, serve
# examples/real-node/iris.yaml from the real node, and under live client traffic switch it to a new
# version, walk a canary, and show a failing version rolled back, printing every second how many
# answers came from each version and how many failed. Then two canaries behind a metric gate
# (measured from the local Prometheus): one whose model rejects the clients' requests, rolled back
# by its success rate, and a good one, promoted; each prints what the analysis measured.
# The cluster and the operator keep running afterwards so you can look around.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
eval "$("$here/cluster.sh" env)"
# The operator measures canaries from the local Prometheus (MODELSHIP_PROMETHEUS_URL).
"$here/prometheus.sh" up
eval "$("$here/prometheus.sh" env)"
ns="${DEMO_NAMESPACE:-modelship-demo}"
state="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}/demo"
mkdir -p "$state"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { kubectl -n "$ns" get mdep iris; }
wait_phase() { # phase [stable-version]
  local i
  for ((i = 0; i < 240; i++)); do
    local got
    got="$(kubectl -n "$ns" get mdep iris -o jsonpath='{.status.phase}/{.status.stableVersion}/{.metadata.generation}/{.status.observedGeneration}')"
    IFS=/ read -r phase stable gen observed <<<"$got"
    if [[ "$phase" == "$1" && "$gen" == "$observed" && (-z "${2:-}" || "$stable" == "$2") ]]; then
      show
      return 0
    fi
    sleep 1
  done
  echo "timed out waiting for phase $1 ${2:-}" >&2
  show
  exit 1
}

say "Installing the ModelDeployment CRD"
kubectl apply --server-side --force-conflicts -f "$repo/crds/" >/dev/null
kubectl wait --for=condition=Established crd/modeldeployments.modelship.dev --timeout=60s >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

say "Starting the operator (watching namespace $ns; log: $state/operator.log)"
if [[ -f "$state/operator.pid" ]] && kill -0 "$(cat "$state/operator.pid")" 2>/dev/null; then
  kill "$(cat "$state/operator.pid")" && sleep 1
fi
nohup modelship run --namespace "$ns" --metrics-port 0 --liveness-port 0 >"$state/operator.log" 2>&1 &
echo $! >"$state/operator.pid"

say "A model host in the cluster (examples/real-node/model-host.yaml) with an iris model"
python - "$state/iris.skops" "$state/iris5.skops" <<'PY'
import sys

import numpy as np
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

x, y = load_iris(return_X_y=True)
skops.io.dump(LogisticRegression(max_iter=1000).fit(x, y), sys.argv[1])
# A model that wants a fifth feature the clients never send: every real request is a 400.
skops.io.dump(LogisticRegression(max_iter=1000).fit(np.column_stack([x, x[:, 0]]), y), sys.argv[2])
PY
digest="$(sha256sum "$state/iris.skops" | cut -d' ' -f1)"
digest5="$(sha256sum "$state/iris5.skops" | cut -d' ' -f1)"
kubectl -n "$ns" create configmap models --from-file=iris.skops="$state/iris.skops" \
  --from-file=iris5.skops="$state/iris5.skops" \
  --dry-run=client -o yaml | kubectl -n "$ns" apply -f - >/dev/null
kubectl -n "$ns" apply -f "$repo/examples/real-node/model-host.yaml" >/dev/null
kubectl -n "$ns" rollout status deployment/model-host --timeout=120s >/dev/null

say "Deploying examples/real-node/iris.yaml (version v1) on the real node: real pods, real probes"
kubectl -n "$ns" delete mdep iris --ignore-not-found --wait=true >/dev/null
kubectl -n "$ns" apply -f "$repo/examples/real-node/iris.yaml"
kubectl -n "$ns" patch mdep iris --type merge -p "{\"spec\":{\"model\":{\"sha256\":\"$digest\"}}}" >/dev/null
wait_phase Healthy v1
kubectl -n "$ns" get pods -o wide -l modelship.dev/model-deployment=iris

say "Clients: 20 requests a second through Service iris (each second: answers per version, failures)"
ip="$(kubectl -n "$ns" get service iris -o jsonpath='{.spec.clusterIP}')"
# A new connection per request: kube-proxy spreads every request, so a canary gets its share at once.
python "$here/traffic.py" --ip "$ip" --model iris --rate 20 --connections 4 --fresh-connections &
traffic=$!
trap 'kill $traffic 2>/dev/null || true' EXIT
sleep 3

say "Switching to version v2: it runs beside v1 and takes over once Ready"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{"model":{"version":"v2"}}}'
wait_phase Healthy v2

say "A canary of version v3: 34% of Ready pods, a 10s pause, then 67%, 10s, then promoted"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{"model":{"version":"v3"},
  "rollout":{"canary":{"steps":[{"setWeight":34},{"pause":{"duration":"10s"}},{"setWeight":67},{"pause":{"duration":"10s"}}]}}}}'
wait_phase Healthy v3

say "Version v4's model fails its digest: its pods crash, it is rolled back, v3 keeps serving"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{"model":{"version":"v4","sha256":"'"$(printf '0%.0s' {1..64})"'"}}}'
wait_phase Degraded v3
kubectl -n "$ns" get mdep iris -o jsonpath='{.status.message}{"\n"}'

say "Back to v3 in the spec (as a git revert would): Healthy again, no steps walked"
kubectl -n "$ns" patch mdep iris --type merge -p "{\"spec\":{\"model\":{\"version\":\"v3\",\"sha256\":\"$digest\"}}}"
wait_phase Healthy v3

# The gate of the next two rollouts: 34% of the pods, a 5s pause while the canary's first answers
# are scraped, then every 5s the canary's success rate and p90 latency against v3's, 3 times each.
gate='{"steps":[{"setWeight":34},{"pause":{"duration":"5s"}},{"analysis":{"interval":"5s","count":3,
  "inconclusiveLimit":1,"checks":[{"name":"success-rate","successRate":{"minRate":0.95,"minRequests":20}},
  {"name":"latency","latency":{"quantile":0.9,"maxRatioVsStable":3,"minRequests":20}}]}}]}'
cat >"$state/measurements.py" <<'PY'
"""Prints what each analysis measured: per check, every measurement's verdict, value and threshold."""
import json
import sys

for run in json.load(sys.stdin)["status"].get("analysisRuns", []):
    print(f"  analysis {run['name']}: {run['phase']}: {run.get('message', '')}")
    for check in run.get("checks", []):
        for m in check.get("measurements", []):
            value = "-" if m.get("value") is None else f"{m['value']:.4g}"
            print(
                f"    {m['measuredAt'][11:19]} {check['name']:<13} {m['verdict']:<12} {value:>7}"
                f"  ({m.get('threshold', '')})  {m.get('message', '')}"
            )
PY
measurements() { kubectl -n "$ns" get mdep iris -o json | python "$state/measurements.py"; }

say "Version v5 behind a metric gate: its model wants 5 features, clients send 4 (their 400s show as failed)"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{"model":{"version":"v5",
  "uri":"http://models.'"$ns"'.svc.cluster.local/iris5.skops","sha256":"'"$digest5"'"},
  "rollout":{"canary":'"$gate"'}}}'
wait_phase Degraded v3
kubectl -n "$ns" get mdep iris -o jsonpath='{.status.message}{"\n"}'
measurements

say "Version v6, the good model, behind the same gate: measured, passed and promoted by itself"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{"model":{"version":"v6",
  "uri":"http://models.'"$ns"'.svc.cluster.local/iris.skops","sha256":"'"$digest"'"}}}'
wait_phase Healthy v6
measurements
sleep 2
kill -TERM $traffic
wait $traffic || true
trap - EXIT

cat <<EOF

The demo is done; the cluster and the operator keep running.
  eval "\$(make -s env)"                       # kubectl, helm, modelship on PATH; KUBECONFIG set
  kubectl -n $ns get mdep,deploy,svc,pods
  kubectl -n $ns get events --field-selector involvedObject.kind=ModelDeployment
  tail -f $state/operator.log
Stop the operator: kill \$(cat $state/operator.pid)
Stop the cluster:  make cluster-down
EOF
