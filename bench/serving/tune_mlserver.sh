#!/usr/bin/env bash
# Finds MLServer's best settings on this machine for the benchmark's load (results in RESULTS.md):
# parallel inference workers (0 = in the HTTP process) and adaptive batching on or off.
#
#   bash bench/serving/tune_mlserver.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH_DURATION=${BENCH_DURATION:-5}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
source bench/serving/lib.sh

ensure_tools
make_model
# parallel_workers max_batch_size max_batch_time
for config in "2 0 0" "0 0 0" "1 0 0" "2 32 0.001" "2 32 0.0002" "0 32 0.0002"; do
  read -r parallel size wait <<<"$config"
  say "MLServer parallel_workers=$parallel max_batch_size=$size max_batch_time=$wait"
  start_mlserver "$parallel" "$size" "$wait"
  measure "mlserver(parallel_workers=$parallel,max_batch_size=$size,max_batch_time=$wait)"
  stop_server
done
