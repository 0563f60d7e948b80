"""Metric gates on the local cluster, beyond what tests/e2e proves under real traffic: the apiserver
refuses a bad analysis naming the rule it breaks, a background analysis rolls a canary back from
beside its steps, and a dry-run check is measured and recorded but never decides.

Custom PromQL with a known answer (`vector(1)`, `vector(0)`) against the real Prometheus
(MODELSHIP_PROMETHEUS_URL from `make -s env`) makes each verdict certain without traffic, so the
pods can be kwok's.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.k8s import (
    OperatorProcess,
    apply,
    get_json,
    kubectl_result,
    mdep_status,
    model_deployment,
    wait_for,
)

ERRORS = {"name": "errors", "successRate": {"minRate": 0.99}}
# Prometheus answers these the same at any time: one check always fails, the other always passes.
ABOVE_MAX = {"name": "custom", "prometheus": {"query": "vector(1)", "max": 0.5}}
WITHIN_MAX = {"name": "gate", "prometheus": {"query": "vector(0)", "max": 0.5}}


def with_analysis(**analysis: Any) -> dict[str, Any]:
    return {"rollout": {"canary": {"steps": [{"setWeight": 50}, {"analysis": analysis}]}}}


INVALID: list[tuple[dict[str, Any], str]] = [
    (
        {"rollout": {"canary": {"steps": [{"setWeight": 50, "analysis": {"checks": [ERRORS]}}]}}},
        "exactly one of setWeight, pause or analysis",
    ),
    (
        with_analysis(checks=[{"name": "a", "successRate": {"minRequests": 5}}]),
        "checks[].successRate must set",
    ),
    (with_analysis(checks=[{"name": "a", "latency": {"quantile": 0.9}}]), "checks[].latency must set"),
    (
        with_analysis(checks=[{"name": "a", "prometheus": {"query": "vector(1)"}}]),
        "checks[].prometheus must set",
    ),
    (
        with_analysis(
            checks=[{"name": "a", "successRate": {"minRate": 0.9}, "latency": {"maxMilliseconds": 5}}]
        ),
        "exactly one of successRate, latency or prometheus",
    ),
    (with_analysis(checks=[ERRORS, ERRORS]), "checks[].name must be unique"),
    (with_analysis(interval="500ms", checks=[ERRORS]), "interval must be at least 1s"),
    (
        {
            "rollout": {
                "canary": {"steps": [{"setWeight": 50}], "analysis": {"startingStep": 1, "checks": [ERRORS]}}
            }
        },
        "spec.rollout.canary.analysis.startingStep must be the index",
    ),
]


@pytest.mark.parametrize(("spec", "named"), INVALID, ids=[n for _, n in INVALID])
def test_a_bad_analysis_is_refused_with_a_message_naming_the_field(
    namespace: str, spec: dict[str, Any], named: str
) -> None:
    # Given a manifest whose analysis breaks one rule
    manifest = model_deployment("iris", "1", replicas=1, **spec)
    # When it is applied
    result = kubectl_result("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))
    # Then the apiserver refuses it, saying which rule, and stores nothing
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert not get_json("-n", namespace, "mdep")["items"]


def test_a_valid_analysis_with_every_kind_of_check_is_stored(namespace: str) -> None:
    # Given an analysis step with each kind of check (one a dry run, one custom PromQL) and a
    # compound interval, and a background analysis from the second step
    checks = [ERRORS, {"name": "p99", "latency": {"maxRatioVsStable": 1.5}, "dryRun": True}, WITHIN_MAX]
    spec = with_analysis(interval="1m30s", checks=checks)
    spec["rollout"]["canary"]["analysis"] = {"startingStep": 1, "checks": [ERRORS]}
    # When it is applied
    apply(namespace, model_deployment("iris", "1", replicas=1, **spec))
    # Then the apiserver's rules let it through, whole
    stored = get_json("-n", namespace, "mdep", "iris")["spec"]["rollout"]["canary"]
    assert [c["name"] for c in stored["steps"][1]["analysis"]["checks"]] == ["errors", "p99", "gate"]
    assert stored["analysis"]["startingStep"] == 1


# -- the operator measuring against the real Prometheus ------------------------------------------------
def roll_out(ns: str, canary: dict[str, Any]) -> None:
    """Version 1 Healthy, then version 2 rolled out on kwok's pods with `canary` as its rollout."""
    manifest = model_deployment("iris", "1", replicas=2)
    manifest["spec"]["rollout"]["canary"] = canary
    apply(ns, manifest)
    wait_for("version 1 Healthy", lambda: mdep_status(ns, "iris").get("stableVersion") == "1", timeout=90)
    manifest["spec"]["model"] = model_deployment("iris", "2")["spec"]["model"]
    apply(ns, manifest)


def test_a_failing_background_analysis_rolls_the_canary_back_while_a_step_waits(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given a canary that, after its first step, waits for a promote that never comes, and a
    # background analysis from that step on whose check is above its maximum
    background = {"startingStep": 1, "interval": "2s", "checks": [ABOVE_MAX]}
    # When version 2 is rolled out
    roll_out(namespace, {"steps": [{"setWeight": 50}, {"pause": {}}], "analysis": background})
    # Then the background analysis measures it in Prometheus and rolls version 2 back, naming the check
    status = wait_for(
        "version 2 rolled back",
        lambda: (s := mdep_status(namespace, "iris")).get("phase") == "Degraded" and s,
        timeout=90,
    )
    assert (status["failedVersion"], status["stableVersion"]) == ("2", "1")
    assert "background analysis: check custom failed" in status["message"]
    (run,) = status["analysisRuns"]
    (measurement,) = run["checks"][0]["measurements"]
    assert (run["name"], measurement["verdict"], measurement["value"]) == ("background", "Failed", 1)


def test_a_failing_dry_run_check_is_recorded_but_the_canary_is_promoted(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given an analysis step (no failure tolerated) whose deciding check passes and whose dry-run
    # check is above its maximum at every measurement
    dry_run = {**ABOVE_MAX, "dryRun": True}
    analysis = {"interval": "2s", "count": 2, "checks": [WITHIN_MAX, dry_run]}
    # When version 2 is rolled out
    roll_out(namespace, {"steps": [{"setWeight": 50}, {"analysis": analysis}]})
    # Then it is promoted on the deciding check's two passes
    status = wait_for(
        "version 2 promoted",
        lambda: (s := mdep_status(namespace, "iris")).get("stableVersion") == "2" and s,
        timeout=90,
    )
    # And status shows the dry-run check failing each time, marked as a dry run
    (run,) = status["analysisRuns"]
    records = {c["name"]: c for c in run["checks"]}
    assert (run["phase"], records["gate"]["successful"]) == ("Successful", 2)
    assert (records["custom"]["dryRun"], records["custom"]["failed"]) == (True, 2)
