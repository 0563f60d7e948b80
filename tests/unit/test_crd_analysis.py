"""The CRD's shape rules for metric gates (analysis steps, the background analysis, checks).

The rules run in the apiserver (tests/integration/test_analysis.py applies bad manifests to a
real one); here the rendered schema carries each rule with a message naming the field, and the
pydantic models refuse what the schema's ranges refuse.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelship import api, crd


def _canary_schema() -> dict[str, Any]:
    spec = crd.openapi_schema()["properties"]["spec"]
    schema: dict[str, Any] = spec["properties"]["rollout"]["properties"]["canary"]
    return schema


def _step_analysis_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _canary_schema()["properties"]["steps"]["items"]["properties"]["analysis"]
    return schema


def _rules(node: dict[str, Any]) -> dict[str, str]:
    return {r["rule"]: r["message"] for r in node.get("x-kubernetes-validations", [])}


def test_a_step_sets_exactly_one_of_set_weight_pause_or_analysis() -> None:
    step = _canary_schema()["properties"]["steps"]["items"]
    (message,) = [m for r, m in _rules(step).items() if "has(self.analysis)" in r]
    assert "spec.rollout.canary.steps" in message and "setWeight, pause or analysis" in message


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("successRate", ("minRate", "maxDropVsStable")),
        ("latency", ("maxMilliseconds", "maxRatioVsStable")),
        ("prometheus", ("min", "max")),
    ],
)
def test_each_kind_of_check_needs_at_least_one_limit_named_in_its_message(
    kind: str, names: tuple[str, str]
) -> None:
    check = _step_analysis_schema()["properties"]["checks"]["items"]
    (message,) = _rules(check["properties"][kind]).values()
    assert f"checks[].{kind}" in message and all(n in message for n in names)


def test_a_check_sets_exactly_one_kind_and_names_are_unique_within_an_analysis() -> None:
    checks = _step_analysis_schema()["properties"]["checks"]
    (one_kind,) = _rules(checks["items"]).values()
    assert "exactly one of successRate, latency or prometheus" in one_kind
    (unique,) = _rules(checks).values()
    assert "checks[].name must be unique" in unique
    assert checks["items"]["properties"]["name"]["pattern"] == api.DNS_LABEL_PATTERN


def test_the_interval_is_a_duration_of_at_least_a_second() -> None:
    interval = _step_analysis_schema()["properties"]["interval"]
    assert interval["pattern"] == api.DURATION_PATTERN
    assert _rules(interval) == {
        "duration(self) >= duration('1s')": "spec.rollout.canary (steps[].analysis or analysis).interval "
        "must be at least 1s"
    }


def test_the_background_analysis_starts_at_an_existing_step() -> None:
    rules = _canary_schema()["x-kubernetes-validations"]
    (rule,) = [r for r in rules if "startingStep" in r["rule"]]
    assert rule["fieldPath"] == ".analysis.startingStep"
    assert "spec.rollout.canary.analysis.startingStep" in rule["message"]


def test_the_defaults_are_the_documented_ones() -> None:
    analysis = api.Analysis.model_validate({"checks": [{"name": "ok", "successRate": {"minRate": 0.99}}]})
    assert (analysis.interval, analysis.count) == ("30s", 3)
    limits = (analysis.failure_limit, analysis.inconclusive_limit, analysis.consecutive_error_limit)
    assert limits == (0, 0, 4)
    assert analysis.wait_for_data is False
    check = analysis.checks[0]
    assert check.dry_run is False and check.success_rate is not None
    assert check.success_rate.min_requests == 20
    latency = api.LatencyCheck.model_validate({"maxRatioVsStable": 1.5})
    assert (latency.quantile, latency.min_requests) == (0.99, 20)


@pytest.mark.parametrize(
    "bad",
    [
        {"count": 0, "checks": [{"name": "a", "successRate": {"minRate": 0.9}}]},
        {"count": 101, "checks": [{"name": "a", "successRate": {"minRate": 0.9}}]},
        {"checks": []},
        {"interval": "soon", "checks": [{"name": "a", "successRate": {"minRate": 0.9}}]},
        {"checks": [{"name": "Not_A_Label", "successRate": {"minRate": 0.9}}]},
        {"checks": [{"name": "a", "successRate": {"minRate": 1.5}}]},
        {"checks": [{"name": "a", "latency": {"quantile": 1, "maxMilliseconds": 5}}]},
        {"checks": [{"name": "a", "prometheus": {"query": "", "max": 1}}]},
    ],
)
def test_out_of_range_values_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        api.Analysis.model_validate(bad)


def test_an_analysis_step_has_its_own_kind_and_says_what_it_checks() -> None:
    step = api.Step.model_validate(
        {"analysis": {"checks": [{"name": "errors", "successRate": {"minRate": 0.99}}]}}
    )
    assert step.kind == api.StepKind.ANALYSIS
    assert step.describe() == "analysis of errors"
