#!/usr/bin/env bash
# make bench-operator: Modelship's operator and Argo Rollouts' controller, same work, same cluster.
# Knobs (environment): BENCH_N (objects, default 1000), BENCH_REPLICAS (2), BENCH_NAMESPACES (4),
# BENCH_UNRELATED (pods the controllers must not pay for, 5000), BENCH_ONLY (modelship or
# argo-rollouts), BENCH_REST_SECONDS (60). Prints a markdown table; see bench/operator/RESULTS.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# The reference controller, built from its Go module at the pinned version (cached).
"$repo/hack/build-argo-rollouts.sh" >/dev/null
eval "$("$repo/hack/cluster.sh" env)"
exec "$repo/.venv/bin/python" "$here/bench.py"
