#!/usr/bin/env bash
# `make demo`: on the local cluster, install the CRD, start the operator, deploy examples/iris.yaml,
# switch it to a new version, walk a canary, and show a failing version rolled back.
# The cluster and the operator keep running afterwards so you can look around.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
eval "$("$here/cluster.sh" env)"
ns="${DEMO_NAMESPACE:-modelship-demo}"
state="${MODELSHIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelship}/demo"
mkdir -p "$state"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { kubectl -n "$ns" get mdep iris; }
wait_phase() { # phase [stable-version]
  local i
  for ((i = 0; i < 120; i++)); do
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

say "Deploying examples/iris.yaml (version 1)"
kubectl -n "$ns" delete mdep iris --ignore-not-found --wait=true >/dev/null
kubectl -n "$ns" apply -f "$repo/examples/iris.yaml"
wait_phase Healthy 1

say "Switching to version 2: it runs beside version 1 and takes over once Ready"
kubectl -n "$ns" patch mdep iris --type merge \
  -p '{"spec":{"model":{"version":"2","uri":"https://models.example.com/iris/2/model.skops"}}}'
wait_phase Healthy 2
kubectl -n "$ns" get deployments -l modelship.dev/model-deployment=iris

say "A canary of version 3: 34% of Ready pods, a 5s pause, then 67%, then promoted"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{
  "model":{"version":"3","uri":"https://models.example.com/iris/3/model.skops"},
  "rollout":{"canary":{"steps":[{"setWeight":34},{"pause":{"duration":"5s"}},{"setWeight":67}]}}}}'
for _ in 1 2 3 4 5 6; do sleep 2; show | tail -1; done
wait_phase Healthy 3

say "Version 4 never becomes Ready: rolled back after progressDeadlineSeconds (20s), version 3 keeps serving"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{
  "model":{"version":"4","uri":"https://models.example.com/iris/4/model.skops"},
  "serving":{"podLabels":{"stage.modelship.dev/never-ready":"true"}},
  "rollout":{"progressDeadlineSeconds":20}}}'
wait_phase Degraded 3
kubectl -n "$ns" get mdep iris -o jsonpath='{.status.message}{"\n"}'

say "Back to version 3 in the spec (as a git revert would): Healthy again"
kubectl -n "$ns" patch mdep iris --type merge -p '{"spec":{
  "model":{"version":"3","uri":"https://models.example.com/iris/3/model.skops"},
  "serving":{"podLabels":null}}}'
wait_phase Healthy 3

cat <<EOF

The demo is done; the cluster and the operator keep running.
  eval "\$(make -s env)"                       # kubectl, helm, modelship on PATH; KUBECONFIG set
  kubectl -n $ns get mdep,deploy,svc,pods
  kubectl -n $ns get events --field-selector involvedObject.kind=ModelDeployment
  tail -f $state/operator.log
Stop the operator: kill \$(cat $state/operator.pid)
Stop the cluster:  make cluster-down
EOF
