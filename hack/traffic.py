#!/usr/bin/env python3
"""Real clients for a model served in the local cluster: a steady rate of V2 inference requests
through a Service's ClusterIP, every answer counted by the version that gave it.

Used by the end-to-end tests (tests/e2e) and by `make demo`, which runs it in the background:

  python hack/traffic.py --ip 10.96.0.12 --model iris [--rate 200] [--connections 16] [--fresh-connections]

prints, once a second, how many answers each version gave in that second and how many failed.
Addresses are those of the local cluster (Services, the real node's pods): nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def v2_body(rows: int = 1) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP64", "data": IRIS_ROW * rows}]}


@dataclass
class LoadReport:
    ok: int = 0
    failed: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        versions = ", ".join(f"{v}={n}" for v, n in sorted(self.by_version.items()))
        errors = "; ".join(f"{e} x{n}" for e, n in self.errors.most_common(5))
        return f"{self.ok} ok, {self.failed} failed ({versions}){' -- ' + errors if errors else ''}"


class LoadGenerator:
    """A steady rate of V2 inference requests to `http://<ip>/v2/models/<model>/infer`, from
    `connections` clients that each keep one keep-alive connection (requests' pool, which, like
    real HTTP clients, replaces a connection the server closed while it sat idle).

    Every answer is counted: a 2xx with its model_version, or a failure (status or exception).

    `fresh_connections`: each request on a new connection (`Connection: close`), so kube-proxy picks
    a pod for every request and a canary that appears mid-load gets its share at once (a keep-alive
    connection stays with the pod it was opened to)."""

    def __init__(
        self, ip: str, model: str, rate: float = 200.0, connections: int = 16, fresh_connections: bool = False
    ) -> None:
        self.url = f"http://{ip}/v2/models/{model}/infer"
        self.headers = {"Connection": "close"} if fresh_connections else {}
        self.interval = connections / rate
        self.connections = connections
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, index: int) -> None:
        session = requests.Session()
        body = v2_body()
        # Spread the clients over one interval so the rate is steady, not bursty.
        next_at = time.monotonic() + self.interval * index / self.connections
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            next_at += self.interval
            try:
                resp = session.post(self.url, json=body, timeout=10, headers=self.headers)
                if 200 <= resp.status_code < 300:
                    version = str(resp.json().get("model_version"))
                    with self._lock:
                        self.report.ok += 1
                        self.report.by_version[version] += 1
                else:
                    self._fail(f"HTTP {resp.status_code}: {resp.text[:120]}")
            except requests.RequestException as exc:
                self._fail(f"{type(exc).__name__}: {str(exc)[:160]}")
        session.close()

    def _fail(self, why: str) -> None:
        with self._lock:
            self.report.failed += 1
            self.report.errors[why] += 1

    def snapshot(self) -> LoadReport:
        with self._lock:
            return LoadReport(
                self.report.ok,
                self.report.failed,
                Counter(self.report.by_version),
                Counter(self.report.errors),
            )

    def start(self) -> LoadGenerator:
        for i in range(self.connections):
            t = threading.Thread(target=self._client, args=(i,), daemon=True, name=f"load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
        return self.report


@contextmanager
def steady_load(
    ip: str, model: str, rate: float = 200.0, connections: int = 16, fresh_connections: bool = False
) -> Iterator[LoadGenerator]:
    gen = LoadGenerator(ip, model, rate, connections, fresh_connections).start()
    try:
        yield gen
    finally:
        print(f"load through {ip} at {rate:.0f} req/s on {connections} connections: {gen.stop()}")


def sample_versions(ip: str, model: str, n: int) -> Counter[str]:
    """`n` requests, each on a new connection, so kube-proxy picks an endpoint for every one:
    independent draws over the Ready pods."""
    counts: Counter[str] = Counter()
    url = f"http://{ip}/v2/models/{model}/infer"
    body = v2_body()
    for _ in range(n):
        resp = requests.post(url, json=body, timeout=10, headers={"Connection": "close"})
        resp.raise_for_status()
        counts[str(resp.json()["model_version"])] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ip", required=True, help="the Service's ClusterIP")
    parser.add_argument("--model", required=True, help="the model (ModelDeployment) name")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections (default 4)")
    parser.add_argument(
        "--fresh-connections",
        action="store_true",
        help="a new connection per request, so a canary gets its share of requests from its first moment",
    )
    args = parser.parse_args()
    # A background job of a script ignores SIGINT: the demo stops this with SIGTERM.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    gen = LoadGenerator(args.ip, args.model, args.rate, args.connections, args.fresh_connections).start()
    last = gen.snapshot()
    try:
        while True:
            time.sleep(1)
            now = gen.snapshot()
            versions = now.by_version - last.by_version
            per_version = "  ".join(f"{v}: {n:4d}" for v, n in sorted(versions.items())) or "no answers"
            print(f"[traffic] last second: {per_version}  failed: {now.failed - last.failed}", flush=True)
            last = now
    except KeyboardInterrupt:
        pass
    finally:
        print(f"[traffic] total: {gen.stop()}", file=sys.stderr)


if __name__ == "__main__":
    main()
