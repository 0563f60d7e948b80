"""Prometheus metrics, labelled by model name and version so a canary's numbers stand apart.

Names follow KServe and MLServer (``model_infer_*``, ``*_seconds``), documented in serving_image/README.md.
With several worker processes each writes its samples to files in PROMETHEUS_MULTIPROC_DIR (set by the
supervisor before this module is imported) and ``/metrics`` in any worker sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

# The *_created series double the exposition for no use here (the process start time says as much).
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LABELS = ("model_name", "model_version")

REQUESTS = Counter(
    "model_infer_requests",
    "Inference requests answered, by protocol (v1, v2) and outcome (success, client_error, server_error).",
    [*_LABELS, "protocol", "outcome"],
)
REQUEST_DURATION = Histogram(
    "model_infer_request_duration_seconds",
    "Time from a complete inference request to its response (successful requests).",
    [*_LABELS, "protocol"],
    buckets=_LATENCY_BUCKETS,
)
PREDICT_DURATION = Histogram(
    "model_predict_duration_seconds",
    "Time of one predict call on a batch.",
    list(_LABELS),
    buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "model_batch_size", "Requests merged into one predict call.", list(_LABELS), buckets=_BATCH_BUCKETS
)

# 1 for the path that answers predict calls (sklearn, onnx, onnx-float64, onnx-float32). "max" over the
# worker processes: every worker of a version loads the same file, so they report one series, not one each.
PREDICT_PATH = Gauge(
    "model_predict_path_info",
    "What answers predict calls: sklearn, onnx (an ONNX file), or a compiled graph verified at load.",
    [*_LABELS, "path"],
    multiprocess_mode="max",
)


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    return "client_error" if status < 500 else "server_error"


class Metrics:
    """The metrics of one model version, with label sets bound up front (the hot path only adds)."""

    def __init__(self, model_name: str, model_version: str) -> None:
        labels = (model_name, model_version)
        self._labels = labels
        self._requests = {
            (protocol, outcome): REQUESTS.labels(*labels, protocol, outcome)
            for protocol in ("v1", "v2")
            for outcome in ("success", "client_error", "server_error")
        }
        self._durations = {protocol: REQUEST_DURATION.labels(*labels, protocol) for protocol in ("v1", "v2")}
        self._predict = PREDICT_DURATION.labels(*labels)
        self._batch = BATCH_SIZE.labels(*labels)

    def request(self, protocol: str, status: int, seconds: float) -> None:
        outcome = _outcome(status)
        self._requests[protocol, outcome].inc()
        if outcome == "success":
            self._durations[protocol].observe(seconds)

    def predict_path(self, path: str) -> None:
        PREDICT_PATH.labels(*self._labels, path).set(1)

    def batch(self, size: int, seconds: float) -> None:
        self._batch.observe(size)
        self._predict.observe(seconds)


def render() -> bytes:
    """The exposition text: summed over all worker processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
