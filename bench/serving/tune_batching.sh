#!/usr/bin/env bash
# The measurements behind modelship-server's batching defaults (RESULTS.md): how long a batch may wait
# for more requests (--max-batch-wait-ms), how many it may hold (--max-batch-size), and where predict
# runs (--predict-thread).
#
#   bash bench/serving/tune_batching.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH_DURATION=${BENCH_DURATION:-5}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
source bench/serving/lib.sh

ensure_tools
make_model
for flags in "--max-batch-wait-ms 0" "--max-batch-wait-ms 0.5" "--max-batch-wait-ms 2" \
             "--max-batch-size 1" "--max-batch-size 8" "--max-batch-size 128" \
             "--predict-thread always" "--predict-thread never"; do
  say "modelship-server $flags"
  # shellcheck disable=SC2086 # the flags are meant to split
  start_ours $flags
  measure "modelship(${flags// /=})"
  stop_server
done
