"""Canaries judged on what real clients see: the built image on the real node, real requests
through the Service, the local Prometheus scraping the pods every 2 s, and the operator measuring
the canary's success rate and latency against the stable version's.

Prometheus stays up for every test here; the test that stops one (its own, on another port) is in
test_canary_analysis_outage.py, so no analysis in this file ever sees a Prometheus go away.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from hack.traffic import LoadGenerator, steady_load
from tests.e2e.analysis_support import (
    ANALYSIS_STEP,
    INTERVAL_SECONDS,
    NAME,
    analysis_run,
    check_record,
    five_feature_model,
    gated_steps,
    latency_vs_stable,
    linear_model,
    manifest,
    measurements,
    model_host,
    slow_forest_model,
    stable_only_service,
    success_rate,
)
from tests.e2e.support import cluster_ip, wait_answering, wait_ready_on_real_node
from tests.support.k8s import OperatorProcess, apply, mdep_status, wait_for

RATE = 40.0  # requests a second through the Service: ~100 per 5 s window for a canary at 50%


def serve_v1(namespace: str, files: dict[str, bytes], steps: list[dict[str, Any]]) -> str:
    """v1 (the linear model) Healthy on 2 pods on the real node; returns the model host's URL."""
    base = model_host(namespace, files)
    apply(namespace, manifest(base, "v1", "v1.skops", files["v1.skops"], steps))
    wait_for("v1 Healthy", lambda: mdep_status(namespace, NAME).get("phase") == "Healthy", timeout=180)
    wait_ready_on_real_node(namespace, f"modelship.dev/model-deployment={NAME}", 2)
    wait_answering(cluster_ip(namespace, NAME), NAME)
    return base


def load(namespace: str, service: str = NAME, rate: float = RATE) -> Any:
    return steady_load(cluster_ip(namespace, service), NAME, rate, connections=8, fresh_connections=True)


def rolled_back(namespace: str) -> dict[str, Any] | None:
    status = mdep_status(namespace, NAME)
    return status if status.get("phase") == "Degraded" and status.get("stableVersion") == "v1" else None


def promoted(namespace: str, version: str) -> dict[str, Any] | None:
    status = mdep_status(namespace, NAME)
    ok = status.get("phase") == "Healthy" and status.get("stableVersion") == version
    return status if ok else None


def wait_more_answers(gen: LoadGenerator, version: str, more: int = 40) -> None:
    before = gen.snapshot().by_version[version]
    wait_for(
        f"{more} more answers from {version}", lambda: gen.snapshot().by_version[version] >= before + more
    )


def test_a_canary_answering_real_clients_with_400s_is_rolled_back_by_its_success_rate(
    namespace: str, operator: OperatorProcess, real_node: str
) -> None:
    good, wrong = linear_model(), five_feature_model()
    steps = gated_steps(success_rate(0.95), inconclusiveLimit=1)
    # Given v1 Healthy, clients of the Service, and clients of v1's pods alone
    base = serve_v1(namespace, {"v1.skops": good, "v2.skops": wrong}, steps)
    stable_only_service(namespace, "v1")
    # Its ClusterIP leads nowhere until kube-proxy has its rules: clients start once it answers.
    wait_answering(cluster_ip(namespace, f"{NAME}-v1-only"), NAME)
    with load(namespace) as clients, load(namespace, f"{NAME}-v1-only", rate=10) as stable_clients:
        wait_more_answers(clients, "v1")
        # When v2, a model expecting 5 features where clients send 4, is rolled out behind the gate
        apply(namespace, manifest(base, "v2", "v2.skops", wrong, steps))
        # Then the success-rate check fails it and it is rolled back: all traffic to v1
        status = wait_for("v2 rolled back", lambda: rolled_back(namespace), timeout=240)
        assert status.get("failedVersion") == "v2", status
        assert "check success-rate failed" in status.get("message", ""), status
        failed = [m for m in measurements(namespace, "success-rate") if m["verdict"] == "Failed"]
        assert failed and failed[-1]["value"] == 0.0 and failed[-1]["threshold"] == ">= 0.95", failed
        wait_more_answers(clients, "v1")
        # And the stable version failed none of its clients' requests, before, during or after
        stable_report = stable_clients.snapshot()
        assert (stable_report.failed, stable_report.ok > 0) == (0, True), str(stable_report)
    # And every failure the Service's clients saw was the canary's 400
    assert clients.report.errors and all(e.startswith("HTTP 400") for e in clients.report.errors), str(
        clients.report
    )


def test_a_canary_much_slower_than_stable_is_rolled_back_by_the_relative_latency_check(
    namespace: str, operator: OperatorProcess, real_node: str
) -> None:
    good, slow = linear_model(), slow_forest_model()
    steps = gated_steps(success_rate(0.95), latency_vs_stable(3.0), inconclusiveLimit=1)
    # Given v1 (a linear model) Healthy under client load
    base = serve_v1(namespace, {"v1.skops": good, "v2.skops": slow}, steps)
    with load(namespace) as clients:
        wait_more_answers(clients, "v1")
        # When v2, a 200-tree forest served by scikit-learn, is rolled out behind the gate
        apply(namespace, manifest(base, "v2", "v2.skops", slow, steps))
        # Then the latency check, comparing it with v1 over the same windows, rolls it back
        status = wait_for("v2 rolled back", lambda: rolled_back(namespace), timeout=240)
        assert "check latency failed" in status.get("message", ""), status
        failed = [m for m in measurements(namespace, "latency") if m["verdict"] == "Failed"]
        assert failed and "x stable p90" in failed[-1]["threshold"], failed
        # And it answered every request right meanwhile: only its speed failed it
        assert clients.snapshot().failed == 0, str(clients.snapshot())


def test_a_good_canary_passes_every_check_and_is_promoted_with_no_human_action(
    namespace: str, operator: OperatorProcess, real_node: str
) -> None:
    good = linear_model()
    steps = gated_steps(success_rate(0.99), latency_vs_stable(3.0), inconclusiveLimit=1)
    # Given v1 Healthy under client load
    base = serve_v1(namespace, {"v1.skops": good, "v2.skops": good}, steps)
    with load(namespace) as clients:
        wait_more_answers(clients, "v1")
        # When v2, the same good model, is rolled out behind the gate
        apply(namespace, manifest(base, "v2", "v2.skops", good, steps))
        # Then it is promoted by itself
        wait_for("v2 promoted", lambda: promoted(namespace, "v2"), timeout=240)
        # And the analysis passed with 3 Successful measurements of each check
        run = analysis_run(namespace)
        assert run is not None and run["phase"] == "Successful", run
        for check in ("success-rate", "latency"):
            assert check_record(run, check).get("successful") == 3, run
            assert check_record(run, check).get("failed", 0) == 0, run
        assert clients.snapshot().failed == 0, str(clients.snapshot())


def test_a_canary_with_no_traffic_is_held_paused_as_inconclusive(
    namespace: str, operator: OperatorProcess, real_node: str
) -> None:
    good = linear_model()
    steps = gated_steps(success_rate(0.99))
    # Given v1 Healthy and no clients at all
    base = serve_v1(namespace, {"v1.skops": good, "v2.skops": good}, steps)
    # When v2 is rolled out behind a success-rate gate
    apply(namespace, manifest(base, "v2", "v2.skops", good, steps))

    # Then the rollout holds Paused at the analysis, saying what is missing, and v1 stays stable
    def held() -> dict[str, Any] | None:
        status = mdep_status(namespace, NAME)
        assert status.get("stableVersion") == "v1", f"v2 promoted without any traffic: {status}"
        # The timed pause before the analysis is Paused too: held means Paused at the analysis.
        at_analysis = status.get("currentStepIndex") == ANALYSIS_STEP
        return status if at_analysis and status.get("phase") == "Paused" else None

    status = wait_for("the canary held", held, timeout=180)
    assert "inconclusive" in status.get("message", ""), status
    run = analysis_run(namespace)
    assert run is not None and run["phase"] == "Inconclusive", run
    last = measurements(namespace, "success-rate")[-1]
    assert last["verdict"] == "Inconclusive" and last["message"].endswith("need 20"), last


def test_an_operator_killed_during_an_analysis_resumes_it_from_status_measuring_no_interval_twice(
    namespace: str, operator: OperatorProcess, real_node: str
) -> None:
    good = linear_model()
    steps = gated_steps(success_rate(0.99), count=4, inconclusiveLimit=1)
    base = serve_v1(namespace, {"v1.skops": good, "v2.skops": good}, steps)
    with load(namespace) as clients:
        wait_more_answers(clients, "v1")
        # Given a canary's analysis with one Successful measurement recorded
        apply(namespace, manifest(base, "v2", "v2.skops", good, steps))
        wait_for(
            "a Successful measurement",
            lambda: check_record(analysis_run(namespace), "success-rate").get("successful", 0) >= 1,
            timeout=180,
        )
        before = measurements(namespace, "success-rate")
        # When the operator is killed and started again
        operator.kill()
        operator.start()
        # Then the analysis goes on from status to promotion
        wait_for("v2 promoted", lambda: promoted(namespace, "v2"), timeout=240)
    after = measurements(namespace, "success-rate")
    # And it kept the measurements taken before the kill
    assert [m["measuredAt"] for m in after[: len(before)]] == [m["measuredAt"] for m in before], after
    # And no two measurements are less than an interval apart: no window was measured twice
    times = [datetime.fromisoformat(m["measuredAt"]) for m in after]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= timedelta(seconds=INTERVAL_SECONDS) for gap in gaps), gaps
    assert check_record(analysis_run(namespace), "success-rate").get("successful") == 4
