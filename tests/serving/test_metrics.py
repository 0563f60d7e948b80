"""Prometheus metrics move with traffic, labelled with the model version (how a canary is judged)."""

from __future__ import annotations

from pathlib import Path

from tests.serving.support import Iris, Server, ServerFactory, v2_request

INFER = "/v2/models/iris/infer"


def test_request_counters_and_latency_move_labelled_with_the_version(iris_server: Server, iris: Iris) -> None:
    labels = {"model_name": "iris", "model_version": "1", "protocol": "v2"}
    successes = iris_server.metric("model_infer_requests_total", outcome="success", **labels)
    client_errors = iris_server.metric("model_infer_requests_total", outcome="client_error", **labels)
    latencies = iris_server.metric("model_infer_request_duration_seconds_count", **labels)
    # When three good requests and one bad one are served,
    for _ in range(3):
        assert iris_server.post_json(INFER, v2_request(iris.x[:1].tolist())).status == 200
    assert iris_server.post_json(INFER, {"inputs": []}).status == 400
    # then the counters for version 1 moved by exactly that much,
    assert iris_server.metric("model_infer_requests_total", outcome="success", **labels) == successes + 3
    assert (
        iris_server.metric("model_infer_requests_total", outcome="client_error", **labels)
        == client_errors + 1
    )
    # and the latency histogram counted the successful ones.
    assert iris_server.metric("model_infer_request_duration_seconds_count", **labels) == latencies + 3


def test_v1_requests_are_counted_under_their_own_protocol(iris_server: Server, iris: Iris) -> None:
    labels = {"model_version": "1", "protocol": "v1", "outcome": "success"}
    before = iris_server.metric("model_infer_requests_total", **labels)
    assert iris_server.post_json("/v1/models/iris:predict", {"instances": iris.x[:2].tolist()}).status == 200
    assert iris_server.metric("model_infer_requests_total", **labels) == before + 1


def test_metrics_are_prometheus_text(iris_server: Server) -> None:
    response = iris_server.request("GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE model_infer_requests_total counter" in response.body
    assert b"# TYPE model_batch_size histogram" in response.body


def test_with_two_workers_every_request_is_counted_once(
    servers: ServerFactory, iris: Iris, skops_model: Path, tmp_path: Path
) -> None:
    # Given two worker processes (and access logs, which say which process served each request),
    server = servers.start(
        "--model-uri",
        str(skops_model),
        "--model-name",
        "iris",
        "--model-version",
        "5",
        "--workers",
        "2",
        "--access-log",
    )
    server.wait_for_log("all workers ready")
    # when forty requests arrive on forty connections (the kernel spreads them over both workers),
    for _ in range(40):
        assert server.post_json(INFER, v2_request(iris.x[:1].tolist())).status == 200
    # then both workers served some,
    serving_pids = {line["pid"] for line in server.log_lines() if line.get("path") == INFER}
    assert len(serving_pids) == 2
    # and /metrics, answered by either, counts all forty.
    labels = {"model_version": "5", "protocol": "v2", "outcome": "success"}
    assert server.metric("model_infer_requests_total", **labels) == 40
    assert server.metric("model_infer_request_duration_seconds_count", model_version="5", protocol="v2") == 40
