"""Metric gates in the pure core: what is due, how measurements are recorded, what a run concludes.

Measurements are given, as the controller would hand them over after asking Prometheus; each
test walks a rollout with builders.py, one reconcile at a time, without a cluster.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelship import api
from modelship.api import AnalysisPhase, Outcome, Phase, Verdict
from modelship.engine import Measured, Plan, due, reconcile
from modelship.observation import Observed

from .builders import as_applied, healthy_at, later, new_version, settle
from .test_reconcile_canary import annotate

ERRORS = {"name": "errors", "successRate": {"minRate": 0.99}}
P99 = {"name": "p99", "latency": {"maxRatioVsStable": 1.5}}
Model = api.ModelDeployment


def gated(checks: list[dict[str, Any]] | None = None, **limits: Any) -> list[dict[str, Any]]:
    """A canary at 20% of traffic, then an analysis every 30 s."""
    analysis = {"interval": "30s", "count": 2, "checks": checks or [ERRORS], **limits}
    return [{"setWeight": 20}, {"analysis": analysis}]


def start(steps: list[dict[str, Any]], background: dict[str, Any] | None = None) -> tuple[Model, Observed]:
    """Version 1 stable; version 2 rolled out with `steps`, settled at the first analysis (t=1 s)."""
    current, obs = healthy_at("1", replicas=10)
    canary: dict[str, Any] = {"steps": steps}
    if background is not None:
        canary["analysis"] = background
    current = new_version(current, "2", rollout={"canary": canary})
    current, obs, _ = settle(current, obs, later(1), passes=6)
    return current, obs


def measured(current: Model, now: datetime, **verdicts: Verdict) -> list[Measured]:
    """What the controller hands over: a measurement with the given verdict for each due check."""
    return [
        Measured(
            d.run,
            api.Measurement(
                check=d.check.name,
                verdict=verdicts[d.check.name],
                value=0.5,
                threshold=">= 0.99",
                message=f"{d.check.name} was {verdicts[d.check.name]}",
                measured_at=now,
            ),
        )
        for d in due(current, now)
    ]


def measure(
    current: Model, obs: Observed, now: datetime, **verdicts: Verdict
) -> tuple[Model, Observed, Plan]:
    """One pass at `now` with the due measurements, then passes until the rollout rests."""
    plan = reconcile(current, obs, now, measurements=measured(current, now, **verdicts))
    current = current.model_copy(update={"status": plan.status})
    obs = as_applied(plan, obs)
    current, obs, _ = settle(current, obs, now, passes=6)
    return current, obs, plan


def run_of(current: Model, name: str = "step-2") -> api.AnalysisRun:
    return next(r for r in current.status.analysis_runs if r.name == name)


def test_the_analysis_step_measures_after_one_interval_and_wakes_for_it() -> None:
    # Given a canary that reached its analysis step at t=1 s
    current, obs = start(gated())
    # Then nothing is due before one interval has passed, and the operator asks to be woken then
    assert due(current, later(30)) == []
    assert reconcile(current, obs, later(1)).wake_at == later(31)
    # And then the check is due, covering the 30 s before it
    (first,) = due(current, later(31))
    assert (first.run, first.check.name, first.target.window.total_seconds()) == ("step-2", "errors", 30)
    assert (first.target.canary_version, first.target.stable_version) == ("2", "1")
    assert current.status.phase == Phase.PROGRESSING


def test_the_step_passes_after_count_successful_measurements_and_the_canary_is_promoted() -> None:
    # Given an analysis that needs 2 Successful measurements
    current, obs = start(gated())
    # When the first is Successful, the step still waits for the second
    current, obs, _ = measure(current, obs, later(31), errors=Verdict.SUCCESSFUL)
    assert current.status.current_step_index == 1
    assert "errors 1/2" in (current.status.message or "")
    # When the second is Successful
    current, obs, plan = measure(current, obs, later(61), errors=Verdict.SUCCESSFUL)
    # Then the analysis passed and version 2 is promoted
    assert run_of(current).phase == AnalysisPhase.SUCCESSFUL
    assert current.status.stable_version == "2" and current.status.phase == Phase.HEALTHY
    assert "AnalysisSuccessful" in [e.reason for e in plan.events]


def test_a_failure_past_the_failure_limit_rolls_back_naming_the_check() -> None:
    # Given an analysis that tolerates one failed measurement
    current, obs = start(gated(failureLimit=1))
    # When the first measurement fails, it keeps measuring
    current, obs, _ = measure(current, obs, later(31), errors=Verdict.FAILED)
    assert current.status.canary_version == "2" and current.status.phase == Phase.PROGRESSING
    # When the second fails too
    current, obs, plan = measure(current, obs, later(61), errors=Verdict.FAILED)
    # Then it is rolled back like a failed deadline: all traffic to stable, Degraded, the check named
    assert current.status.phase == Phase.DEGRADED
    assert "check errors failed" in (current.status.message or "")
    assert (obs.versions["1"].replicas, obs.versions["2"].replicas) == (10, 0)
    rev = current.status.revisions[-1]
    assert (rev.outcome, rev.reason) == (Outcome.ROLLED_BACK, "AnalysisFailed")
    assert current.status.failed_version == "2"
    assert run_of(current).phase == AnalysisPhase.FAILED
    assert [e.type for e in plan.events if e.reason == "AnalysisFailed"] == ["Warning"]


def test_inconclusive_past_the_limit_holds_paused_saying_what_is_missing() -> None:
    # Given an analysis with the default inconclusiveLimit of 0
    current, obs = start(gated())
    # When a measurement is inconclusive
    current, obs, plan = measure(current, obs, later(31), errors=Verdict.INCONCLUSIVE)
    # Then the rollout holds, Paused, with the measurement's reason, and measures no more
    assert current.status.phase == Phase.PAUSED
    assert "errors was Inconclusive" in (current.status.message or "")
    assert run_of(current).phase == AnalysisPhase.INCONCLUSIVE
    assert current.status.canary_version == "2" and current.status.current_step_index == 1
    assert due(current, later(600)) == []
    assert "AnalysisInconclusive" in [e.reason for e in plan.events]


def test_query_errors_never_pass_and_past_the_limit_hold_like_inconclusive() -> None:
    # Given an analysis that needs one Successful measurement and tolerates 2 errors in a row
    current, obs = start(gated(count=1, consecutiveErrorLimit=2))
    # When two measurements error
    for t in (31, 61):
        current, obs, _ = measure(current, obs, later(t), errors=Verdict.ERROR)
        # Then the step has not passed
        assert current.status.current_step_index == 1 and current.status.phase == Phase.PROGRESSING
    # When a third errors
    current, obs, _ = measure(current, obs, later(91), errors=Verdict.ERROR)
    # Then the rollout holds, Paused, counting the errors
    assert current.status.phase == Phase.PAUSED
    assert "3 query errors in a row" in (current.status.message or "")


def test_dry_run_checks_are_recorded_but_do_not_decide() -> None:
    # Given a deciding check and a dry-run check that keeps failing
    current, obs = start(gated([ERRORS, {**P99, "dryRun": True}]))
    for t in (31, 61):
        current, obs, _ = measure(current, obs, later(t), errors=Verdict.SUCCESSFUL, p99=Verdict.FAILED)
    # Then the analysis passed on the deciding check and the dry-run measurements are in status
    run = run_of(current)
    assert run.phase == AnalysisPhase.SUCCESSFUL
    p99 = next(c for c in run.checks if c.name == "p99")
    assert p99.failed == 2 and all(m.dry_run for m in p99.measurements)
    assert current.status.stable_version == "2"


def test_a_restarted_operator_resumes_without_measuring_an_interval_again() -> None:
    # Given a measurement recorded at t=31 s
    current, obs = start(gated())
    current, obs, _ = measure(current, obs, later(31), errors=Verdict.SUCCESSFUL)
    # When a new operator reads the object back from the apiserver at t=45 s
    restarted = api.ModelDeployment.model_validate(current.model_dump(by_alias=True, mode="json"))
    # Then nothing is due until one interval after the recorded measurement
    assert due(restarted, later(45)) == []
    assert [d.check.name for d in due(restarted, later(61))] == ["errors"]
    assert reconcile(restarted, obs, later(45)).wake_at == later(61)


def test_status_keeps_the_last_ten_measurements_and_the_totals() -> None:
    # Given an analysis that needs 12 Successful measurements
    current, obs = start(gated(count=12))
    # When 11 are recorded
    for i in range(11):
        current, obs, _ = measure(current, obs, later(31 + 30 * i), errors=Verdict.SUCCESSFUL)
    # Then status holds the last 10 with the total count
    (record,) = run_of(current).checks
    assert record.successful == 11 and len(record.measurements) == api.MEASUREMENT_HISTORY
    assert record.measurements[-1].measured_at == later(331)


def held() -> tuple[Model, Observed]:
    current, obs = start(gated())
    current, obs, _ = measure(current, obs, later(31), errors=Verdict.INCONCLUSIVE)
    assert current.status.phase == Phase.PAUSED
    return current, obs


def test_promote_skips_an_inconclusive_analysis() -> None:
    # Given a rollout held by an inconclusive analysis
    current, obs = held()
    # When the user promotes
    current, obs, _ = settle(annotate(current, **{"modelship.dev/promote": "p"}), obs, later(40))
    # Then the analysis is skipped and the canary promoted
    assert run_of(current).phase == AnalysisPhase.SKIPPED
    assert current.status.stable_version == "2" and current.status.phase == Phase.HEALTHY


def test_promote_skips_an_analysis_step_that_is_still_measuring() -> None:
    # Given an analysis step with one of its two measurements taken
    current, obs = start(gated())
    current, obs, _ = measure(current, obs, later(31), errors=Verdict.SUCCESSFUL)
    # When the user promotes
    current, obs, _ = settle(annotate(current, **{"modelship.dev/promote": "p"}), obs, later(40))
    # Then the analysis is skipped and the canary promoted
    assert run_of(current).phase == AnalysisPhase.SKIPPED
    assert current.status.stable_version == "2"


def test_retry_runs_the_analysis_again_from_the_start() -> None:
    # Given a rollout held by an inconclusive analysis
    current, obs = held()
    # When the user retries at t=40 s
    current, obs, _ = settle(annotate(current, **{"modelship.dev/retry": "r"}), obs, later(40))
    # Then a fresh run measures from then on, and passes on new data
    run = run_of(current)
    assert (run.phase, run.started_at, run.checks[0].inconclusive) == (AnalysisPhase.RUNNING, later(40), 0)
    assert [d.check.name for d in due(current, later(70))] == ["errors"]
    for t in (70, 100):
        current, obs, _ = measure(current, obs, later(t), errors=Verdict.SUCCESSFUL)
    assert current.status.stable_version == "2"


def test_abort_rolls_back_a_held_analysis() -> None:
    # Given a rollout held by an inconclusive analysis
    current, obs = held()
    # When the user aborts
    current, obs, _ = settle(annotate(current, **{"modelship.dev/abort": "a"}), obs, later(40))
    # Then version 1 serves alone and the revision says aborted
    assert current.status.phase == Phase.DEGRADED
    assert current.status.revisions[-1].outcome == Outcome.ABORTED
    assert obs.versions["2"].replicas == 0


def test_wait_for_data_holds_while_data_is_missing_and_passes_once_it_arrives() -> None:
    # Given an analysis that waits for data
    current, obs = start(gated(waitForData=True))
    # When a measurement is inconclusive
    current, obs, plan = measure(current, obs, later(31), errors=Verdict.INCONCLUSIVE)
    # Then the rollout holds, Paused, saying so, and keeps measuring
    assert current.status.phase == Phase.PAUSED
    assert "waiting for data" in (current.status.message or "")
    assert plan.wake_at == later(61) and run_of(current).phase == AnalysisPhase.RUNNING
    # When data arrives
    for t in (61, 91):
        current, obs, _ = measure(current, obs, later(t), errors=Verdict.SUCCESSFUL)
    # Then it passes
    assert current.status.stable_version == "2"


BACKGROUND = {"interval": "30s", "startingStep": 1, "checks": [ERRORS]}
PAUSED_STEPS: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {"duration": "10m"}}, {"setWeight": 50}]


def test_background_analysis_starts_at_its_step() -> None:
    # Given a background analysis from step 2 (index 1), and a rollout at its first step
    current, obs = healthy_at("1", replicas=10)
    canary = {"steps": [{"pause": {}}, *PAUSED_STEPS], "analysis": BACKGROUND}
    current = new_version(current, "2", rollout={"canary": canary})
    current, obs, _ = settle(current, obs, later(1), passes=6)
    # Then no background run exists before that step
    assert current.status.current_step_index == 0 and current.status.analysis_runs == []


def test_a_background_failure_rolls_back_during_a_pause() -> None:
    # Given a canary in a 10-minute pause with a background analysis running
    current, obs = start(PAUSED_STEPS, background=BACKGROUND)
    assert current.status.current_step_index == 1 and current.status.phase == Phase.PAUSED
    assert run_of(current, "background").phase == AnalysisPhase.RUNNING
    # When the background check fails
    current, obs, _ = measure(current, obs, later(31), errors=Verdict.FAILED)
    # Then the canary is rolled back before the pause ends, the message naming the check
    assert current.status.phase == Phase.DEGRADED
    assert "background analysis: check errors failed" in (current.status.message or "")
    assert obs.versions["2"].replicas == 0


def test_a_background_analysis_keeps_measuring_past_count_until_promotion() -> None:
    # Given a background analysis (count 3 by default) beside a 10-minute pause
    current, obs = start(PAUSED_STEPS, background=BACKGROUND)
    # When it has measured more than count times
    for t in (31, 61, 91, 121):
        current, obs, _ = measure(current, obs, later(t), errors=Verdict.SUCCESSFUL)
    # Then it still runs and the next measurement is due
    assert run_of(current, "background").phase == AnalysisPhase.RUNNING
    assert [d.run for d in due(current, later(151))] == ["background"]
    # And once the pause is over and the canary promoted, it counts as Successful
    current, obs, _ = settle(current, obs, later(602), passes=8)
    assert current.status.stable_version == "2"
    assert run_of(current, "background").phase == AnalysisPhase.SUCCESSFUL
