#!/usr/bin/env bash
# Modelship's model server against every peer a user would pick, same machine, same models, same load
# generator, one run: MLServer 1.7.1, KServe 0.21's Python ModelServer (as its sklearnserver serves a
# scikit-learn model), and modelship-server with its compiled predict path (the default) and without it
# (--compile off).
#
#   bash bench/serving/run.sh            # from the repo root (make bench-serving runs exactly this)
#
# Two models (make_model.py): "iris", a LogisticRegression on iris, and "forest", a 200-tree
# RandomForestClassifier on scikit-learn's bundled breast-cancer data. One-row V2 infer requests (the shape
# of most real traffic) from wrk over keep-alive connections on 127.0.0.1, at several concurrency levels:
# requests/s, p50 and p99 for each server, and modelship's ratios to the better peer at each level.
#
# It installs what it lacks: wrk (apt), the repo venv .venv (our server), and MLServer and KServe each in a
# venv of its own under ${XDG_CACHE_HOME:-~/.cache}/modelship/bench (their pins must not touch ours).
#
# Knobs (environment): BENCH_DURATION (s per level, 10), BENCH_CONCURRENCY ("1 8 32 64"),
# BENCH_WORKERS (processes per server, 2), BENCH_MODELS ("iris forest"). MLServer runs with BENCH_WORKERS
# parallel inference workers in each of MLSERVER_CONFIGS ("max_batch_size:max_batch_time" pairs; 0 =
# adaptive batching off), the two best found by tune_mlserver.sh (RESULTS.md), and is credited with the
# better one at each level. KServe runs with --workers BENCH_WORKERS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# A port of its own, so compare_stacks.sh or tune_*.sh (18181) running at the same time cannot answer
# our requests (two benchmarks at once on this machine measure nothing; this only keeps them apart).
export BENCH_PORT=${BENCH_PORT:-18281}
source bench/serving/lib.sh

MLSERVER_CONFIGS=${MLSERVER_CONFIGS:-"32:0.001 0:0"}
MODELS=${BENCH_MODELS:-"iris forest"}

ensure_tools
ensure_kserve
say "writing the models and measuring in-process predict calls"
CALLS=$(.venv/bin/python bench/serving/make_model.py "$WORK" | grep '^CALLS')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS="$WORK/results"
SNAPSHOTS="$WORK/snapshots"
: >"$RESULTS"
: >"$SNAPSHOTS"

# Where modelship-server's time goes at each level: its own histograms (time in the server per request,
# per predict call, rows per call), summed over its workers, read before and after each level.
snapshot_metrics() {  # name concurrency
  curl -s "http://$HOST:$PORT/metrics" | awk -v n="$1" -v c="$2" '
    /^model_(infer_request_duration_seconds|predict_duration_seconds)_(sum|count)\{/ ||
    /^model_batch_size_sum\{/ { split($1, name, "{"); v[name[1]] += $2 }
    END { printf "%s %d %d %.6f %d %.6f %d\n", n, c,
      v["model_infer_request_duration_seconds_count"], v["model_infer_request_duration_seconds_sum"],
      v["model_predict_duration_seconds_count"], v["model_predict_duration_seconds_sum"],
      v["model_batch_size_sum"] }' >>"$SNAPSHOTS"
}

for MODEL in $MODELS; do
  export BENCH_PATH="/v2/models/$MODEL/infer" BENCH_BODY
  BENCH_BODY=$(cat "$WORK/$MODEL.body.json")
  say "[$MODEL] modelship-server, compiled path: $WORKERS workers"
  start_ours
  curl -s "http://$HOST:$PORT/v2/models/$MODEL" | grep -o '"predict_path":"[^"]*"' >&2 || true
  MEASURE_HOOK=snapshot_metrics measure "$MODEL/modelship" >>"$RESULTS"
  stop_server
  say "[$MODEL] modelship-server --compile off: $WORKERS workers"
  start_ours --compile off
  MEASURE_HOOK=snapshot_metrics measure "$MODEL/modelship-sklearn" >>"$RESULTS"
  stop_server
  for config in $MLSERVER_CONFIGS; do
    size=${config%%:*} wait=${config##*:}
    say "[$MODEL] MLServer $MLSERVER_VERSION: parallel_workers=$WORKERS, max_batch_size=$size, max_batch_time=$wait"
    start_mlserver "$WORKERS" "$size" "$wait"
    measure "$MODEL/mlserver(batch=$size/${wait}s)" >>"$RESULTS"
    stop_server
  done
  say "[$MODEL] KServe $KSERVE_VERSION ModelServer: --workers $WORKERS"
  start_kserve "$WORKERS"
  measure "$MODEL/kserve" >>"$RESULTS"
  stop_server
done

echo
echo "One-row V2 infer, wrk -t1 over keep-alive connections, ${DURATION}s per level, $WORKERS worker processes"
echo "each, $(nproc) cores, $(date -u +%FT%TZ); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
.venv/bin/python bench/serving/report.py "$RESULTS" "$SNAPSHOTS" <<<"$CALLS"
