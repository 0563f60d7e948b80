"""`kubectl modelship` and metric gates: the running analysis in `status`, promote and retry."""

from __future__ import annotations

from typing import Any

from modelship.plugin.actions import plan_action
from modelship.plugin.render import render_status

from .test_kubectl_plugin import NOW, mdep, ts

ANALYSIS_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analysis": {"checks": [{"name": "errors", "successRate": {"minRate": 0.99}}]}},
]


def at_analysis(run_phase: str = "Running", phase: str = "Progressing", **run: Any) -> dict[str, Any]:
    """v2 over v1 at step 2, an analysis whose check `errors` was measured 10 s ago."""
    measurement = {
        "check": "errors",
        "verdict": "Inconclusive" if run_phase == "Inconclusive" else "Successful",
        "value": 0.9975,
        "threshold": ">= 0.99",
        "message": "canary success rate 0.9975 of 400 requests in 30s",
        "measuredAt": ts(10),
    }
    analysis_run = {
        "name": "step-2",
        "stepIndex": 1,
        "phase": run_phase,
        "message": "Successful measurements errors 1/3",
        "startedAt": ts(40),
        "checks": [
            {"name": "errors", "successful": 1, "lastMeasuredAt": ts(10), "measurements": [measurement]}
        ],
        **run,
    }
    rollout = {"kind": "Canary", "version": "v2", "fromVersion": "v1", "stepKind": "Analysis"}
    return mdep(
        "v2",
        steps=ANALYSIS_STEPS,
        generation=2,
        rollout={**rollout, "waitingForPromote": run_phase == "Inconclusive"},
        phase=phase,
        message="step 2: analysis running",
        stableVersion="v1",
        canaryVersion="v2",
        canaryWeight=25,
        currentStepIndex=1,
        stepStartedAt=ts(40),
        progressStartedAt=ts(100),
        analysisRuns=[analysis_run],
    )


def test_status_shows_each_check_of_the_running_analysis_with_value_threshold_verdict_and_time() -> None:
    # Given a rollout at an analysis step with one measurement
    text = render_status(at_analysis(), [], NOW)
    # Then the analysis section shows the run and its check's last measurement
    assert "step 2 (step-2), started" in text and "Running" in text
    (row,) = [line for line in text.splitlines() if line.strip().startswith("errors")]
    for cell in ("Successful", "0.9975", ">= 0.99", f"{ts(10)} (10s ago)", "1/0/0/0", "400 requests"):
        assert cell in row, (cell, row)


def test_promote_skips_an_analysis_step_that_is_still_measuring() -> None:
    plan = plan_action("promote", at_analysis(), "t-1")
    assert plan.patch["metadata"]["annotations"] == {"modelship.dev/promote": "t-1"}
    assert "analysis at step 2/2 is skipped" in plan.summary


def test_retry_runs_an_inconclusive_analysis_again() -> None:
    # Given a rollout held by an inconclusive analysis
    held = at_analysis("Inconclusive", phase="Paused")
    # When the user retries, the plugin writes the token and says what happens
    plan = plan_action("retry", held, "t-1")
    assert plan.patch["metadata"]["annotations"] == {"modelship.dev/retry": "t-1"}
    assert "inconclusive analysis (step-2) measures again" in plan.summary
