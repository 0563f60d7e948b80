# Shared by run.sh, tune_mlserver.sh and compare_stacks.sh (sourced from the repo root).
# Installs what the benchmarks need, writes the model, starts and stops servers, drives wrk.

DURATION=${BENCH_DURATION:-10}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 32 64"}
WORKERS=${BENCH_WORKERS:-2}
MLSERVER_VERSION=1.7.1
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/modelship/bench
MLSERVER_VENV=$CACHE/mlserver-$MLSERVER_VERSION
KSERVE_VERSION=0.21.0
KSERVE_VENV=$CACHE/kserve-$KSERVE_VERSION
# The model the servers load and wrk asks for (make_model.py writes iris and forest).
MODEL=${MODEL:-iris}
HOST=127.0.0.1
PORT=${BENCH_PORT:-18181}
LUA=bench/serving/infer_v2.lua
WORK=$(mktemp -d "${TMPDIR:-/tmp}/modelship-bench.XXXXXX")
# Every server gets the same BLAS setup (see .library/env: these two slow a current numpy).
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

SERVER_PID=""
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }

ensure_tools() {
  if ! command -v wrk >/dev/null; then
    say "installing wrk (apt)"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  fi
  if [[ ! -x .venv/bin/modelship-server ]]; then
    say "creating .venv with modelship-server"
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install -q -e "./serving_image[test]"
  fi
  if [[ ! -f "$MLSERVER_VENV/.installed" ]]; then
    say "installing MLServer $MLSERVER_VERSION into $MLSERVER_VENV"
    python3 -m venv "$MLSERVER_VENV"
    # MLServer 1.7.1's inference workers call asyncio.get_event_loop() with no loop set, which uvloop
    # 0.22 and later turn into an error (the workers die at start): uvloop stays at 0.21.0 here.
    "$MLSERVER_VENV/bin/pip" install -q "mlserver==$MLSERVER_VERSION" "mlserver-sklearn==$MLSERVER_VERSION" \
      "uvloop==0.21.0"
    touch "$MLSERVER_VENV/.installed"
  fi
}

ensure_kserve() {
  if [[ ! -f "$KSERVE_VENV/.installed" ]]; then
    say "installing KServe $KSERVE_VERSION into $KSERVE_VENV"
    python3 -m venv "$KSERVE_VENV"
    # The same scikit-learn, numpy and joblib as ours: the model file and its predict are the same.
    "$KSERVE_VENV/bin/pip" install -q "kserve==$KSERVE_VERSION" "scikit-learn==1.9.1" "numpy==2.4.6" \
      "joblib==1.6.0"
    touch "$KSERVE_VENV/.installed"
  fi
}

# Writes $WORK/iris.skops and $WORK/iris.joblib; sets ONE_ROW_RATE and BATCH_RATE (in-process ceiling).
make_model() {
  local ceiling
  ceiling=$(.venv/bin/python bench/serving/make_model.py "$WORK" | sed -n 's/^CEILING //p')
  ONE_ROW_RATE=$(sed -n 's/.*predict_calls_per_s=\([0-9]*\).*/\1/p' <<<"$ceiling")
  BATCH_RATE=$(sed -n 's/.*rows_per_s_batch32=\([0-9]*\).*/\1/p' <<<"$ceiling")
}

wait_ready() {
  for _ in $(seq 600); do
    if curl -sf "http://$HOST:$PORT/v2/models/$MODEL/ready" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { say "server exited; its log:"; tail -5 "$WORK"/*.log >&2; return 1; }
    sleep 0.2
  done
  say "server not ready after 120 s"
  return 1
}

stop_server() {
  # Servers run in a process group of their own (setsid), so their worker processes go too. MLServer
  # can take minutes to finish on SIGTERM: after 10 s it is killed.
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    sleep 1
  fi
  SERVER_PID=""
}

start_ours() {  # extra modelship-server flags...
  setsid .venv/bin/modelship-server --model-uri "$WORK/$MODEL.skops" --model-name "$MODEL" --model-version 1 \
    --host "$HOST" --port "$PORT" --workers "$WORKERS" "$@" >"$WORK/ours.log" 2>&1 &
  SERVER_PID=$!
  wait_ready
}

start_mlserver() {  # parallel_workers max_batch_size max_batch_time
  local dir="$WORK/mlserver"
  rm -rf "$dir" && mkdir -p "$dir/$MODEL"
  cp "$WORK/$MODEL.joblib" "$dir/$MODEL/model.joblib"
  cat >"$dir/settings.json" <<JSON
{"debug": false, "host": "$HOST", "http_port": $PORT, "grpc_port": $((PORT + 1)),
 "metrics_port": $((PORT + 2)), "parallel_workers": $1, "load_models_at_startup": true}
JSON
  cat >"$dir/$MODEL/model-settings.json" <<JSON
{"name": "$MODEL", "implementation": "mlserver_sklearn.SKLearnModel",
 "parameters": {"uri": "./model.joblib", "version": "1"}, "max_batch_size": $2, "max_batch_time": $3}
JSON
  (cd "$dir" && exec setsid "$MLSERVER_VENV/bin/mlserver" start . >"$WORK/mlserver.log" 2>&1) &
  SERVER_PID=$!
  wait_ready
}

start_kserve() {  # workers
  setsid "$KSERVE_VENV/bin/python" bench/serving/kserve_model.py --model_name "$MODEL" \
    --model_path "$WORK/$MODEL.joblib" --http_port "$PORT" --grpc_port $((PORT + 1)) --workers "$1" \
    --log_config_file bench/serving/kserve_logging.json \
    >"$WORK/kserve.log" 2>&1 &
  SERVER_PID=$!
  wait_ready
}

# Prints "NAME CONCURRENCY REQ_PER_S P50_MS P99_MS ERRORS" per concurrency level; MEASURE_HOOK, when set,
# is called with the name and 0 after the warm-up, then with the name and each level after it ran.
measure() {  # name
  local name=$1 c line
  wrk -t1 -c8 -d2s -s "$LUA" "http://$HOST:$PORT/" >/dev/null  # warm-up
  ${MEASURE_HOOK:-:} "$name" 0
  for c in $CONCURRENCY; do
    # A server that stops answering is a result (errors), not the end of the whole run.
    line=$(wrk -t1 -c"$c" -d"${DURATION}s" --timeout 10s -s "$LUA" "http://$HOST:$PORT/" | grep '^BENCH') ||
      line="BENCH requests=0 seconds=1 p50_us=0 p99_us=0 errors=1"
    ${MEASURE_HOOK:-:} "$name" "$c"
    awk -v n="$name" -v c="$c" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%s %d %.0f %.2f %.2f %d\n", n, c, v["requests"] / v["seconds"], v["p50_us"] / 1000,
          v["p99_us"] / 1000, v["errors"] }' <<<"$line"
  done
}
