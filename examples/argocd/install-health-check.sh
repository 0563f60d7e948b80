#!/usr/bin/env bash
# Wires the ModelDeployment health check (argocd/health.lua) into a running Argo CD: sets the key
# resource.customizations.health.modelship.dev_ModelDeployment of the argocd-cm ConfigMap to the
# script's text, leaving every other key of argocd-cm as it is. Argo CD reloads argocd-cm on its
# own; no restart is needed. Run it again after health.lua changes.
#
#   examples/argocd/install-health-check.sh [path/to/health.lua]
#
# ARGOCD_NAMESPACE  where Argo CD runs (default: argocd)
#
# It uses server-side apply under its own field manager, so it owns that one key and nothing
# else. If Argo CD manages its own argocd-cm from Git, put the key there instead (README.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lua="${1:-$repo/argocd/health.lua}"
namespace="${ARGOCD_NAMESPACE:-argocd}"
key="resource.customizations.health.modelship.dev_ModelDeployment"

if [[ ! -s "$lua" ]]; then
  echo "error: no health check at $lua" >&2
  exit 1
fi
if ! kubectl -n "$namespace" get configmap argocd-cm >/dev/null 2>&1; then
  echo "error: no ConfigMap argocd-cm in namespace $namespace: is Argo CD installed there? (set ARGOCD_NAMESPACE)" >&2
  exit 1
fi

kubectl -n "$namespace" create configmap argocd-cm --from-file="$key=$lua" --dry-run=client -o yaml |
  kubectl -n "$namespace" apply --server-side --force-conflicts --field-manager=modelship-health-check -f - >/dev/null
echo "argocd-cm in namespace $namespace: $key set from $lua"
