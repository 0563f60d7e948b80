#!/usr/bin/env bash
# The measurement behind modelship-server's HTTP stack (RESULTS.md): the same core (routing, batching,
# model) behind its own httptools protocol, uvicorn (httptools + uvloop, ASGI) and granian (RSGI and
# ASGI), one worker each, same load, BENCH_RUNS rounds (the order of the stacks rotates each round, so a
# change in the machine's load does not fall on one stack), then medians, spread and ratios, and a py-spy
# profile of each stack at the highest concurrency. uvicorn, granian and py-spy go in a venv of their own
# under the cache.
#
#   bash bench/serving/compare_stacks.sh                    # 5 rounds x 5 s per level, then profiles
#   BENCH_RUNS=7 BENCH_PROFILE_SECONDS=0 bash bench/serving/compare_stacks.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH_DURATION=${BENCH_DURATION:-5}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
BENCH_WORKERS=${BENCH_WORKERS:-1}
RUNS=${BENCH_RUNS:-5}
PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-8}
source bench/serving/lib.sh

STACKS_VENV=$CACHE/stacks-2
ensure_tools
if [[ ! -f "$STACKS_VENV/.installed" ]]; then
  python3 -m venv "$STACKS_VENV"
  "$STACKS_VENV/bin/pip" install -q -e ./serving_image "uvicorn==0.54.0" "granian==2.8.7" "py-spy==0.4.3"
  touch "$STACKS_VENV/.installed"
fi
make_model
export MODELSHIP_MODEL_URI="$WORK/iris.skops" MODELSHIP_MODEL_NAME=iris MODELSHIP_MODEL_VERSION=1

start_stack() {  # name
  case $1 in
    own) start_ours ;;
    uvicorn)
      PYTHONPATH=bench/serving setsid "$STACKS_VENV/bin/uvicorn" stacks:asgi_app --host "$HOST" --port "$PORT" \
        --workers "$WORKERS" --loop uvloop --http httptools --no-access-log --log-level warning \
        >"$WORK/stack.log" 2>&1 &
      SERVER_PID=$!
      wait_ready ;;
    granian-rsgi | granian-asgi)
      PYTHONPATH=bench/serving setsid "$STACKS_VENV/bin/granian" --interface "${1#granian-}" --host "$HOST" \
        --port "$PORT" --workers "$WORKERS" --loop uvloop --no-log "stacks:${1#granian-}_app" \
        >"$WORK/stack.log" 2>&1 &
      SERVER_PID=$!
      wait_ready ;;
  esac
}

STACKS=(own uvicorn granian-rsgi granian-asgi)
RAW=$WORK/raw.txt
say "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
  for i in "${!STACKS[@]}"; do
    stack=${STACKS[$(((i + run - 1) % ${#STACKS[@]}))]}
    start_stack "$stack"
    measure "$stack" | sed "s/\$/ $run/" | tee -a "$RAW" >&2
    stop_server
  done
  say "round $run done; load: $(cut -d' ' -f1-3 /proc/loadavg)"
done

# Medians over the rounds, the spread (min-max), and each stack's median against the own stack's.
.venv/bin/python - "$RAW" <<'PY'
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, c, rps, p50, p99, errors, run = line.split()
    rows[name, int(c)].append((float(rps), float(p99), int(errors)))
stacks = list(dict.fromkeys(name for name, _ in rows))
levels = sorted({c for _, c in rows})
print("| stack | c | runs | req/s median | req/s min-max | p99 ms median | p99 min-max | own / this | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in stacks:
    for c in levels:
        got = rows[name, c]
        rps = [r for r, _, _ in got]
        p99 = [p for _, p, _ in got]
        own = statistics.median(r for r, _, _ in rows["own", c])
        print(
            f"| {name} | {c} | {len(got)} | {statistics.median(rps):.0f} | {min(rps):.0f}-{max(rps):.0f} "
            f"| {statistics.median(p99):.2f} | {min(p99):.2f}-{max(p99):.2f} "
            f"| {own / statistics.median(rps):.2f}x | {sum(e for _, _, e in got)} |"
        )
PY
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Where the time goes: py-spy samples each stack's server process(es) under the highest concurrency.
[[ "$PROFILE_SECONDS" -gt 0 ]] || exit 0
top_c=${CONCURRENCY##* }
for stack in "${STACKS[@]}"; do
  start_stack "$stack"
  wrk -t1 -c"$top_c" -d"$((PROFILE_SECONDS + 3))s" --timeout 10s -s "$LUA" "http://$HOST:$PORT/" >/dev/null &
  wrk_pid=$!
  sleep 1
  "$STACKS_VENV/bin/py-spy" record --subprocesses --rate 250 --duration "$PROFILE_SECONDS" --format raw \
    --output "$WORK/profile-$stack.txt" --pid "$SERVER_PID" >/dev/null 2>&1 || say "py-spy failed for $stack"
  wait "$wrk_pid" || true
  stop_server
  echo "## profile: $stack at c=$top_c (share of samples, by innermost Python function)"
  .venv/bin/python - "$WORK/profile-$stack.txt" <<'PY'
import sys
from collections import Counter

leaf, where, total = Counter(), Counter(), 0
for line in open(sys.argv[1]):
    stack, _, count = line.rstrip().rpartition(" ")
    frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
    if not frames:
        continue
    n = int(count)
    total += n
    leaf[frames[-1]] += n
    # Which layer the sample is in: the innermost frame from a file we can name.
    for frame in reversed(frames):
        for layer in ("httptools", "uvicorn", "granian", "modelship_server/http", "stacks.py", "batching",
                      "protocol", "predictor", "sklearn", "numpy", "app.py", "asyncio", "orjson"):
            if layer in frame:
                where[layer] += n
                break
        else:
            continue
        break
for name, n in leaf.most_common(12):
    print(f"  {100 * n / total:5.1f}%  {name}")
print("  by layer: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in where.most_common()))
PY
done
