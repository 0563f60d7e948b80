"""A Prometheus that goes away in the middle of a canary analysis: the errors are counted, the
rollout holds and never passes, and it goes on once Prometheus is back.

This is the one file that stops a Prometheus, and it stops only its own: a second instance on
port 9091 (MODELSHIP_PROMETHEUS_PORT, hack/prometheus.sh), which this test's operator queries.
The shared one on 9090 stays up, so analyses in other files running at the same time
(pytest -n 2 --dist loadfile) never see an outage.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hack.traffic import steady_load
from tests.e2e.analysis_support import (
    NAME,
    analysis_run,
    check_record,
    gated_steps,
    linear_model,
    manifest,
    model_host,
    success_rate,
)
from tests.e2e.support import cluster_ip, wait_answering, wait_ready_on_real_node
from tests.support.k8s import ENV, REPO, OperatorProcess, apply, mdep_status, wait_for

PORT = "9091"
COUNT = 6  # long enough that the analysis is still measuring when Prometheus is stopped


@dataclass(frozen=True)
class PrivatePrometheus:
    url: str

    def run(self, command: str) -> None:
        env = {**ENV, "MODELSHIP_PROMETHEUS_PORT": PORT}
        subprocess.run([str(REPO / "hack/prometheus.sh"), command], env=env, check=True, timeout=120)


@pytest.fixture
def prometheus(cluster: None) -> Iterator[PrivatePrometheus]:
    instance = PrivatePrometheus(ENV["MODELSHIP_PROMETHEUS_URL"].rsplit(":", 1)[0] + f":{PORT}")
    instance.run("up")
    yield instance
    instance.run("down")


@pytest.fixture
def operator(
    namespace: str, tmp_path: Path, request: pytest.FixtureRequest, prometheus: PrivatePrometheus
) -> Iterator[OperatorProcess]:
    """The test's operator, measuring from the private Prometheus."""
    op = OperatorProcess([namespace], tmp_path / "operator.log", ["--prometheus-url", prometheus.url]).start()
    yield op
    op.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"--- operator log ({namespace}) ---\n{op.log()[-6000:]}")


def record(namespace: str) -> dict[str, Any]:
    return check_record(analysis_run(namespace), "success-rate")


def test_prometheus_stopped_mid_analysis_holds_the_rollout_and_it_resumes_when_back(
    namespace: str, operator: OperatorProcess, prometheus: PrivatePrometheus, real_node: str
) -> None:
    good = linear_model()
    steps = gated_steps(success_rate(0.99), count=COUNT, waitForData=True, consecutiveErrorLimit=1)
    base = model_host(namespace, {"v1.skops": good, "v2.skops": good})
    apply(namespace, manifest(base, "v1", "v1.skops", good, steps))
    wait_for("v1 Healthy", lambda: mdep_status(namespace, NAME).get("phase") == "Healthy", timeout=180)
    wait_ready_on_real_node(namespace, f"modelship.dev/model-deployment={NAME}", 2)
    ip = cluster_ip(namespace, NAME)
    wait_answering(ip, NAME)
    with steady_load(ip, NAME, 40, connections=8, fresh_connections=True):
        # Given a good canary's analysis under way, with a Successful measurement
        apply(namespace, manifest(base, "v2", "v2.skops", good, steps))
        wait_for(
            "a Successful measurement",
            lambda: record(namespace).get("successful", 0) >= 1,
            timeout=180,
        )

        # When its Prometheus stops
        prometheus.run("stop")

        # Then the errors are counted and the rollout holds, Paused, saying why; it never passes
        def held_through_errors() -> dict[str, Any] | None:
            status = mdep_status(namespace, NAME)
            run = analysis_run(namespace) or {}
            assert status.get("stableVersion") == "v1", f"promoted while Prometheus was down: {status}"
            assert run.get("phase") == "Running", f"the analysis ended while Prometheus was down: {run}"
            errors = check_record(run, "success-rate").get("errors", 0)
            return status if errors >= 3 and status.get("phase") == "Paused" else None

        status = wait_for("errors counted, the rollout held", held_through_errors, timeout=120)
        assert "query errors in a row" in status.get("message", ""), status
        assert f"cannot reach Prometheus at {prometheus.url}" in status.get("message", ""), status
        assert record(namespace).get("successful", 0) < COUNT
        # When Prometheus is back
        prometheus.run("up")
        # Then the analysis resumes, passes on Successful measurements only, and v2 is promoted
        wait_for(
            "v2 promoted",
            lambda: (
                (s := mdep_status(namespace, NAME)).get("stableVersion") == "v2"
                and s.get("phase") == "Healthy"
            ),
            timeout=240,
        )
    run = analysis_run(namespace)
    assert run is not None and run["phase"] == "Successful", run
    assert check_record(run, "success-rate")["successful"] == COUNT, run
    assert check_record(run, "success-rate")["errors"] >= 3, run
