"""measure() against the local cluster's real Prometheus (MODELSHIP_PROMETHEUS_URL, from
`make -s env`), which scrapes the serving pods on the real node every 2 s.

A real serving pod answers a known number of good and bad requests; the success rate Prometheus
gives back must be exactly theirs. Then every way a query can come back useless (bad PromQL, no
series, several series, NaN, no Prometheus at all, one that never answers) gives the documented
verdict and message, never Successful.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from hack.traffic import IRIS_ROW
from modelship import api
from modelship.measure import MeasureTarget
from modelship.prometheus import PrometheusClient, measure
from tests.e2e.support import (
    cluster_ip,
    iris_model_bytes,
    model_host,
    on_real_node,
    sha256_hex,
    wait_ready_on_real_node,
)
from tests.serving.support import free_port
from tests.support.k8s import ENV, OperatorProcess, apply, mdep_status, wait_for

NAME = "iris"
GOOD, BAD = 30, 10


def prometheus() -> PrometheusClient:
    return PrometheusClient(ENV["MODELSHIP_PROMETHEUS_URL"])


def check(**kind: Any) -> api.Check:
    return api.Check.model_validate({"name": "gate", **kind})


def target(namespace: str, window: timedelta = timedelta(seconds=30)) -> MeasureTarget:
    return MeasureTarget(namespace, NAME, canary_version="v1", stable_version=None, window=window)


def measure_now(client: PrometheusClient, spec: api.Check, at: MeasureTarget) -> api.Measurement:
    return asyncio.run(measure(client, spec, at, datetime.now(UTC)))


def infer(ip: str, features: list[float]) -> int:
    body = {
        "inputs": [{"name": "input-0", "shape": [1, len(features)], "datatype": "FP64", "data": features}]
    }
    return requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=body, timeout=10).status_code


def scraped_requests(client: PrometheusClient, namespace: str) -> float | None:
    """The raw counter as Prometheus last scraped it (no window, no extrapolation); None before
    its first scrape of the pod."""
    promql = f'sum(model_infer_requests_total{{namespace="{namespace}",model_name="{NAME}"}})'
    result = asyncio.run(client.query(promql, datetime.now(UTC)))
    return result.samples[0].value if result.samples else None


@pytest.fixture
def serving_v1(namespace: str, operator: OperatorProcess) -> str:
    """iris v1 on one pod on the real node, Healthy, its Service answering health checks (which
    are not inference requests: the pod's request counters are all still 0); returns the ClusterIP."""
    model = iris_model_bytes()
    base = model_host(namespace, {"iris.skops": model})
    apply(
        namespace,
        {
            "apiVersion": "modelship.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": NAME},
            "spec": {
                "model": {"version": "v1", "uri": f"{base}/iris.skops", "sha256": sha256_hex(model)},
                "replicas": 1,
                "serving": on_real_node(),
            },
        },
    )
    wait_for("v1 Healthy", lambda: mdep_status(namespace, NAME).get("phase") == "Healthy", timeout=180)
    wait_ready_on_real_node(namespace, f"modelship.dev/model-deployment={NAME}", 1)
    ip = cluster_ip(namespace, NAME)
    wait_for("the Service answering", lambda: health_ok(ip))
    return ip


def health_ok(ip: str) -> bool:
    try:
        return requests.get(f"http://{ip}/v2/health/ready", timeout=5).ok
    except requests.RequestException:
        return False


def test_the_success_rate_of_a_real_pod_is_its_clients_share_of_good_answers(
    namespace: str, serving_v1: str
) -> None:
    client = prometheus()
    wait_for("v1's counters scraped at 0", lambda: scraped_requests(client, namespace) == 0, timeout=60)
    # Given 30 good requests and 10 with 5 features for a 4-feature model (each a 400)
    statuses = [infer(serving_v1, IRIS_ROW) for _ in range(GOOD)]
    statuses += [infer(serving_v1, [*IRIS_ROW, 1.0]) for _ in range(BAD)]
    assert (statuses.count(200), statuses.count(400)) == (GOOD, BAD)
    wait_for("the requests scraped", lambda: scraped_requests(client, namespace) == GOOD + BAD)
    # When the success rate is measured over a window holding all of them
    spec = check(successRate={"minRate": 0.9, "minRequests": 20})
    got = measure_now(client, spec, target(namespace, timedelta(minutes=5)))
    # Then it is their share of good answers, failing a 0.9 minimum: the 400s count as failures
    assert (got.verdict, got.threshold) == (api.Verdict.FAILED, ">= 0.9"), got
    assert got.value == pytest.approx(GOOD / (GOOD + BAD)), got


def test_bad_promql_is_an_error_with_prometheus_reason(namespace: str) -> None:
    got = measure_now(prometheus(), check(prometheus={"query": "sum(", "max": 1}), target(namespace))
    assert got.verdict == api.Verdict.ERROR
    assert got.message.startswith("query query: Prometheus refused the query (bad_data): "), got.message
    assert "parse error" in got.message


def test_a_query_with_no_series_is_inconclusive(namespace: str) -> None:
    query = (
        'sum(rate(model_infer_requests_total{namespace="{{namespace}}",model_name="absent"}[{{interval}}]))'
    )
    got = measure_now(prometheus(), check(prometheus={"query": query, "min": 0.99}), target(namespace))
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message == "the query returned no series in 30s: no data yet"


def test_a_query_with_several_series_is_an_error_asking_for_an_aggregation(namespace: str) -> None:
    query = 'label_replace(vector(1), "x", "a", "", "") or label_replace(vector(2), "x", "b", "", "")'
    got = measure_now(prometheus(), check(prometheus={"query": query, "max": 5}), target(namespace))
    assert got.verdict == api.Verdict.ERROR
    assert got.message.startswith('the query returned 2 series ({x="a"}, {x="b"})'), got.message


def test_nan_from_prometheus_is_inconclusive_not_a_pass(namespace: str) -> None:
    got = measure_now(prometheus(), check(prometheus={"query": "0/0", "min": 0}), target(namespace))
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message.startswith("the query returned nan in 30s"), got.message


def test_an_unreachable_prometheus_is_an_error_naming_its_address() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    got = measure_now(PrometheusClient(url), check(successRate={"minRate": 0.9}), target("ns"))
    assert got.verdict == api.Verdict.ERROR
    assert got.message.startswith(f"requests query: cannot reach Prometheus at {url}: "), got.message


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_prometheus_that_never_answers_is_an_error_after_the_timeout(silent_server: str) -> None:
    client = PrometheusClient(silent_server, timeout_seconds=0.5)
    got = measure_now(client, check(successRate={"minRate": 0.9}), target("ns"))
    assert got.verdict == api.Verdict.ERROR
    assert got.message == f"requests query: no answer from Prometheus at {silent_server} within 0.5s"


def test_without_an_address_every_measurement_is_an_error_saying_how_to_set_one() -> None:
    got = measure_now(PrometheusClient(""), check(successRate={"minRate": 0.9}), target("ns"))
    assert got.verdict == api.Verdict.ERROR
    assert "--prometheus-url" in got.message


def test_an_unknown_placeholder_is_an_error_before_any_query() -> None:
    got = measure_now(prometheus(), check(prometheus={"query": "up{x='{{model}}'}", "max": 1}), target("ns"))
    assert got.verdict == api.Verdict.ERROR
    assert got.message.startswith("unknown placeholder {{model}} in the query"), got.message


def test_a_range_vector_is_an_error_asking_for_an_instant_one(namespace: str) -> None:
    query = 'model_infer_requests_total{namespace="{{namespace}}"}[{{interval}}]'
    got = measure_now(prometheus(), check(prometheus={"query": query, "max": 1}), target(namespace))
    assert got.verdict == api.Verdict.ERROR
    assert got.message == "the query answered a matrix; a check needs an instant vector or a scalar"
