#!/usr/bin/env bash
# The measurement behind modelship-server's HTTP stack (RESULTS.md): the same core (routing, batching,
# model) behind its own httptools protocol, uvicorn (httptools + uvloop, ASGI) and granian (RSGI and
# ASGI), one worker each, same load. uvicorn and granian go in a venv of their own under the cache.
#
#   bash bench/serving/compare_stacks.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH_DURATION=${BENCH_DURATION:-5}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
BENCH_WORKERS=${BENCH_WORKERS:-1}
source bench/serving/lib.sh

STACKS_VENV=$CACHE/stacks
ensure_tools
if [[ ! -f "$STACKS_VENV/.installed" ]]; then
  python3 -m venv "$STACKS_VENV"
  "$STACKS_VENV/bin/pip" install -q -e ./serving_image "uvicorn==0.54.0" "granian==2.8.7"
  touch "$STACKS_VENV/.installed"
fi
make_model
export MODELSHIP_MODEL_URI="$WORK/iris.skops" MODELSHIP_MODEL_NAME=iris MODELSHIP_MODEL_VERSION=1

start_stack() {  # command...
  PYTHONPATH=bench/serving setsid "$@" >"$WORK/stack.log" 2>&1 &
  SERVER_PID=$!
  wait_ready
}

start_ours
measure "modelship(httptools-protocol)"
stop_server
start_stack "$STACKS_VENV/bin/uvicorn" stacks:asgi_app --host "$HOST" --port "$PORT" --workers "$WORKERS" \
  --loop uvloop --http httptools --no-access-log --log-level warning
measure "uvicorn(asgi)"
stop_server
for interface in rsgi asgi; do
  start_stack "$STACKS_VENV/bin/granian" --interface "$interface" --host "$HOST" --port "$PORT" \
    --workers "$WORKERS" --loop uvloop --no-log "stacks:${interface}_app"
  measure "granian($interface)"
  stop_server
done
