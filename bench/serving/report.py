"""The benchmark's tables, from the lines ``measure`` wrote (``MODEL/SERVER CONCURRENCY REQ_PER_S P50_MS
P99_MS ERRORS``) and make_model.py's ``CALLS`` lines on stdin.

    python report.py RESULTS_FILE [SNAPSHOTS_FILE] < calls

Per model and concurrency: modelship-server with its compiled path, without it, the better of MLServer's
configurations, KServe, and the ratios of the compiled path to the better peer (MLServer or KServe, by
throughput at that level). The goals (issue 12): at concurrency 1, 5x the better peer's req/s with a lower
p99; at 64, 20x (50x for the forest).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

GOALS = {"iris": {1: 5.0, 64: 20.0}, "forest": {1: 5.0, 64: 50.0}}


@dataclass(frozen=True)
class Run:
    server: str
    rps: float
    p50: float
    p99: float
    errors: int


def _load(path: Path) -> dict[str, dict[int, list[Run]]]:
    runs: dict[str, dict[int, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        name, concurrency, rps, p50, p99, errors = line.split()
        model, server = name.split("/", 1)
        runs[model][int(concurrency)].append(Run(server, float(rps), float(p50), float(p99), int(errors)))
    return runs


def _best(runs: list[Run], prefix: str) -> Run | None:
    matching = [r for r in runs if r.server.startswith(prefix)]
    return max(matching, key=lambda r: r.rps) if matching else None


def _cell(run: Run | None) -> str:
    return "- | - | -" if run is None else f"{run.rps:.0f} | {run.p50:.2f} | {run.p99:.2f}"


def _where_time_goes(path: Path, runs: dict[str, dict[int, list[Run]]]) -> None:
    """Per level, from the server's own histograms: the time of one request as the client sees it
    (connections / req/s), the part spent inside the server (request complete -> response written), and
    one predict call, with the rows it predicted."""
    previous: dict[str, list[float]] = {}
    rows = []
    for line in path.read_text().splitlines():
        name, concurrency, *values = line.split()
        counters = [float(v) for v in values]
        before = previous.get(name)
        previous[name] = counters
        if before is None or int(concurrency) == 0:
            continue
        requests, request_s, calls, predict_s, predicted = (
            a - b for a, b in zip(counters, before, strict=True)
        )
        model, server = name.split("/", 1)
        run = next((r for r in runs[model][int(concurrency)] if r.server == server), None)
        if run is None or requests <= 0 or calls <= 0:
            continue
        rows.append(
            f"| {model} | {server} | {concurrency} | {int(concurrency) / run.rps * 1e3:.3f} "
            f"| {request_s / requests * 1e3:.3f} | {predict_s / calls * 1e6:.0f} | {predicted / calls:.1f} |"
        )
    if rows:
        print("\nWhere modelship-server's time goes (its own histograms, summed over workers):\n")
        print(
            "| model | server | c | per request, client ms | in server ms | predict call us | rows per call |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        print("\n".join(rows))


def main() -> None:
    runs = _load(Path(sys.argv[1]))
    calls = {}
    for line in sys.stdin.read().splitlines():
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        calls[fields["model"]] = fields
    errors = 0
    for model, levels in runs.items():
        call = calls.get(model, {})
        print(
            f"\n### {model}: compiled path {call.get('path', '?')}; one predict call in process: "
            f"scikit-learn {call.get('sklearn_us', '?')} us, compiled {call.get('compiled_us', '?')} us\n"
        )
        print(
            "| c | modelship req/s | p50 ms | p99 ms | --compile off req/s | p50 ms | p99 ms "
            "| MLServer req/s | p50 ms | p99 ms | KServe req/s | p50 ms | p99 ms "
            "| vs better peer | p99 vs peer's | goal |"
        )
        print("|---:" * 13 + "|---:|---:|---|")
        for concurrency in sorted(levels):
            level = levels[concurrency]
            errors += sum(r.errors for r in level)
            ours = next((r for r in level if r.server == "modelship"), None)
            plain = next((r for r in level if r.server == "modelship-sklearn"), None)
            mlserver, kserve = _best(level, "mlserver"), _best(level, "kserve")
            peers = [p for p in (mlserver, kserve) if p is not None]
            peer = max(peers, key=lambda r: r.rps) if peers else None
            ratio = p99_ratio = goal = "-"
            if ours is not None and peer is not None:
                ratio = f"{ours.rps / peer.rps:.1f}x"
                lowest_p99 = min(p.p99 for p in peers)
                p99_ratio = f"{ours.p99 / lowest_p99:.2f}x"
                target = GOALS.get(model, {}).get(concurrency)
                if target is not None:
                    met = ours.rps >= target * peer.rps and (concurrency != 1 or ours.p99 < lowest_p99)
                    goal = f"{'met' if met else 'MISSED'} (>= {target:.0f}x)"
            print(
                f"| {concurrency} | {_cell(ours)} | {_cell(plain)} | {_cell(mlserver)} | {_cell(kserve)} "
                f"| {ratio} | {p99_ratio} | {goal} |"
            )
        mlserver_runs = sorted(
            {r.server for level in levels.values() for r in level if r.server.startswith("ml")}
        )
        print(f"\nMLServer column: the better of {', '.join(mlserver_runs)} at each level.")
    print(
        "\nvs better peer = modelship (compiled) req/s / the higher of MLServer's and KServe's req/s; "
        "p99 vs peer's = modelship p99 / the lower of their p99s (below 1: ours is lower)."
    )
    if len(sys.argv) > 2:
        _where_time_goes(Path(sys.argv[2]), runs)
    if errors:
        print(f"\nwrk counted {errors} socket or status errors")
    print("\nAll runs (server, concurrency, req/s, p50 ms, p99 ms, errors):")
    print(Path(sys.argv[1]).read_text().rstrip())


if __name__ == "__main__":
    main()
