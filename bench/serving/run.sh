#!/usr/bin/env bash
# Modelship's model server against MLServer 1.7.1: same machine, same model, same load generator.
#
#   bash bench/serving/run.sh            # from the repo root (make bench-serving runs exactly this)
#
# One-row V2 infer requests (the shape of most real traffic) from wrk over keep-alive connections on
# 127.0.0.1, at several concurrency levels: requests/s, p50 and p99 latency for each server, the ratio
# between them, and the in-process predict rate as the ceiling for one row per predict call.
#
# It installs what it lacks: wrk (apt), the repo venv .venv (our server), and MLServer in a venv of its
# own under ${XDG_CACHE_HOME:-~/.cache}/modelship/bench (its pins must not touch ours).
#
# Knobs (environment): BENCH_DURATION (s per level, 10), BENCH_CONCURRENCY ("1 8 32 64"),
# BENCH_WORKERS (processes per server, 2). MLServer runs with BENCH_WORKERS parallel inference workers
# in each of MLSERVER_CONFIGS ("max_batch_size:max_batch_time" pairs; 0 = adaptive batching off), the
# two best found by tune_mlserver.sh (RESULTS.md), and is credited with the better one at each level.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source bench/serving/lib.sh

MLSERVER_CONFIGS=${MLSERVER_CONFIGS:-"32:0.001 0:0"}

ensure_tools
make_model

say "modelship-server: $WORKERS workers"
start_ours
OURS=$(measure modelship)
stop_server

THEIRS=""
for config in $MLSERVER_CONFIGS; do
  size=${config%%:*} wait=${config##*:}
  say "MLServer $MLSERVER_VERSION: parallel_workers=$WORKERS, max_batch_size=$size, max_batch_time=$wait"
  start_mlserver "$WORKERS" "$size" "$wait"
  THEIRS+=$(measure "batch=$size/${wait}s")$'\n'
  stop_server
done
# MLServer's best configuration at each level: the highest throughput (its p99 goes with it).
BEST=$(sort -k2,2n -k3,3nr <<<"$THEIRS" | awk 'NF && !seen[$2]++ { print $2, $3, $4, $5, $6, $1 }')

echo
echo "One-row V2 infer, iris LogisticRegression, wrk -t1 over keep-alive connections, ${DURATION}s per level,"
echo "$WORKERS worker processes each, $(nproc) cores, $(date -u +%FT%TZ)"
echo
echo "| concurrency | modelship req/s | p50 ms | p99 ms | MLServer req/s | p50 ms | p99 ms | MLServer config | throughput | p99 |"
echo "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
join <(sed 's/^modelship //' <<<"$OURS" | sort -k1,1) <(sort -k1,1 <<<"$BEST") | sort -n | awk '{
    printf "| %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %s | %.1fx | %.2fx |\n",
      $1, $2, $3, $4, $6, $7, $8, $10, $2 / $6, $4 / $8
    errors += $5 + $9 }
  END { if (errors > 0) printf "\nwrk counted %d socket or status errors\n", errors }'
echo
echo "throughput = modelship req/s / MLServer req/s; p99 = modelship p99 / MLServer p99 (below 1: lower)."
echo "MLServer config = adaptive batching max_batch_size/max_batch_time of its best run at that level. All runs:"
sed '/^$/d; s/^/  MLServer /' <<<"$THEIRS"
echo "Ceiling in one process: $ONE_ROW_RATE one-row predict calls/s ($((ONE_ROW_RATE * WORKERS))/s over $WORKERS"
echo "processes); $BATCH_RATE rows/s predicting 32 rows per call."
