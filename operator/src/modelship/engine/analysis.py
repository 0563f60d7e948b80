"""Metric gates: which checks to measure now, recording what was measured, and what a run concludes.

An analysis run lives in `status.analysisRuns`: "step-<n>" for an analysis step, "background" for
`spec.rollout.canary.analysis`. Each check keeps its verdict counts and last measurement time, so
`due()` answers from status alone: a restarted operator measures a check again only once a whole
interval has passed since the last recorded measurement, never re-running measured intervals.

A pass goes: the controller asks `due()`, measures each (modelship.prometheus, I/O), and hands the
Measurements to `reconcile()`, which `record()`s them before the pipeline runs; the step handler and
the background handler then read the run's counts through `gate()`.

How a run ends (Argo Rollouts' limits, stricter where its users were bitten):
  a deciding check failed more than failureLimit times          -> Failed: roll back
  inconclusive more than inconclusiveLimit times, or query errors
  more than consecutiveErrorLimit in a row                       -> Inconclusive: hold (Paused) until
                                                                    promote (skip), retry or abort
  (waitForData: neither counts; the run holds and keeps measuring until data arrives)
  every deciding check has `count` Successful measurements      -> Successful (step runs only)
Errors and missing data never add up to a pass; dry-run checks are measured and shown, never decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from modelship import api
from modelship.api import AnalysisPhase, AnalysisRun, CheckRecord, Verdict
from modelship.engine.context import Continue, Decision, Fail, RolloutContext, StepResult, Wait
from modelship.measure import MeasureTarget

BACKGROUND = "background"
MESSAGE_LIMIT = 512


def step_run_name(index: int) -> str:
    return f"step-{index + 1}"


@dataclass(frozen=True)
class Due:
    """A check to measure now, for the run named `run`."""

    run: str
    check: api.Check
    target: MeasureTarget


@dataclass(frozen=True)
class Measured:
    """A measurement taken for a Due, handed back to reconcile()."""

    run: str
    measurement: api.Measurement


# -- which analysis a run measures --------------------------------------------------------------
def analysis_of(md: api.ModelDeployment, run: AnalysisRun) -> api.Analysis | None:
    """The spec of a running run, or None when the spec or the rollout moved past it."""
    canary = md.spec.rollout.canary
    if canary is None:
        return None
    if run.name == BACKGROUND:
        return canary.analysis
    index = md.status.current_step_index
    if run.step_index is None or run.step_index != index or index >= len(canary.steps):
        return None
    return canary.steps[index].analysis


def find_run(status: api.ModelDeploymentStatus, name: str) -> AnalysisRun | None:
    return next((r for r in status.analysis_runs if r.name == name), None)


def find_record(run: AnalysisRun, name: str) -> CheckRecord | None:
    return next((c for c in run.checks if c.name == name), None)


def next_due(run: AnalysisRun, check: api.Check, analysis: api.Analysis) -> datetime:
    record = find_record(run, check.name)
    since = record.last_measured_at if record and record.last_measured_at else run.started_at
    return since + api.parse_duration(analysis.interval)


def next_measurement(run: AnalysisRun, analysis: api.Analysis) -> datetime:
    return min(next_due(run, check, analysis) for check in analysis.checks)


def due(md: api.ModelDeployment, now: datetime) -> list[Due]:
    """The checks to measure now: those of a running run whose interval has passed since their
    last recorded measurement (or since the run started). Pure; reads status only."""
    status = md.status
    if status.rollout is None or status.canary_version is None:
        return []
    out: list[Due] = []
    for run in status.analysis_runs:
        analysis = analysis_of(md, run) if run.phase == AnalysisPhase.RUNNING else None
        if analysis is None:
            continue
        target = MeasureTarget(
            namespace=md.metadata.namespace,
            name=md.metadata.name,
            canary_version=status.canary_version,
            stable_version=status.stable_version,
            window=api.parse_duration(analysis.interval),
        )
        out += [Due(run.name, c, target) for c in analysis.checks if now >= next_due(run, c, analysis)]
    return out


# -- recording ----------------------------------------------------------------------------------
def new_run(name: str, step_index: int | None, analysis: api.Analysis, now: datetime) -> AnalysisRun:
    checks = [CheckRecord(name=c.name, dry_run=c.dry_run) for c in analysis.checks]
    return AnalysisRun(name=name, step_index=step_index, started_at=now, checks=checks)


def put_run(status: api.ModelDeploymentStatus, run: AnalysisRun) -> None:
    """Adds `run`, replacing an earlier run of the same name (a retry, a step entered again)."""
    status.analysis_runs = [r for r in status.analysis_runs if r.name != run.name] + [run]


def record(d: Decision, md: api.ModelDeployment, measured: Iterable[Measured], now: datetime) -> None:
    """Adds each measurement to its run's counts and bounded history, with an Event per verdict.
    A measurement for a run that is no longer running (retried, ended) is dropped."""
    for item in measured:
        run = find_run(d.status, item.run)
        analysis = analysis_of(md, run) if run and run.phase == AnalysisPhase.RUNNING else None
        if run is None or analysis is None:
            continue
        m = item.measurement
        check = next((c for c in analysis.checks if c.name == m.check), None)
        if check is None:
            continue
        m = m.model_copy(update={"dry_run": check.dry_run, "message": m.message[:MESSAGE_LIMIT]})
        rec = find_record(run, m.check)
        if rec is None:  # a check added to the spec mid-run
            rec = CheckRecord(name=m.check)
            run.checks.append(rec)
        rec.dry_run = check.dry_run
        _count(rec, m.verdict)
        rec.last_measured_at = now
        rec.measurements = [*rec.measurements, m][-api.MEASUREMENT_HISTORY :]
        dry = " (dry run)" if m.dry_run else ""
        d.event(
            f"Check{m.verdict}",
            f"{describe_run(run)}: check {m.check}{dry} {m.verdict}: {line(m)}",
            warning=m.verdict != Verdict.SUCCESSFUL and not m.dry_run,
        )


def _count(rec: CheckRecord, verdict: str) -> None:
    if verdict == Verdict.ERROR:
        rec.errors += 1
        rec.consecutive_errors += 1
        return
    rec.consecutive_errors = 0
    if verdict == Verdict.SUCCESSFUL:
        rec.successful += 1
    elif verdict == Verdict.FAILED:
        rec.failed += 1
    else:
        rec.inconclusive += 1


def line(m: api.Measurement) -> str:
    """A measurement in one line: value, threshold, why."""
    value = "no value" if m.value is None else f"{m.value:.4g}"
    threshold = f" (threshold {m.threshold})" if m.threshold else ""
    return f"{value}{threshold}: {m.message}" if m.message else f"{value}{threshold}"


def describe_run(run: AnalysisRun) -> str:
    return (
        "background analysis" if run.name == BACKGROUND else f"analysis of step {(run.step_index or 0) + 1}"
    )


# -- what a run concludes -----------------------------------------------------------------------
@dataclass(frozen=True)
class Judgement:
    phase: AnalysisPhase
    message: str
    holding: bool = False  # waitForData: running, but the rollout holds until data arrives


def _last(rec: CheckRecord) -> api.Measurement | None:
    return rec.measurements[-1] if rec.measurements else None


def _last_of(rec: CheckRecord, verdict: Verdict) -> api.Measurement | None:
    return next((m for m in reversed(rec.measurements) if m.verdict == verdict), None)


def judge(run: AnalysisRun, analysis: api.Analysis, background: bool) -> Judgement:
    """The run's state from its counts. Pure; the first matching rule wins, failure first."""
    deciding = [c for c in analysis.checks if not c.dry_run]
    records = [find_record(run, c.name) or CheckRecord(name=c.name) for c in deciding]
    for rec in records:
        if rec.failed > analysis.failure_limit:
            last = _last_of(rec, Verdict.FAILED)
            why = line(last) if last else "failed"
            return Judgement(
                AnalysisPhase.FAILED,
                f"check {rec.name} failed: {why} ({rec.failed} failed measurement(s), "
                f"failureLimit {analysis.failure_limit})",
            )
    for rec in records:
        errors_past = rec.consecutive_errors > analysis.consecutive_error_limit
        last = _last(rec)
        if analysis.wait_for_data:
            if errors_past or (last is not None and last.verdict == Verdict.INCONCLUSIVE):
                what = f"{rec.consecutive_errors} query errors in a row, last: " if errors_past else ""
                why = last.message if last else "no data"
                return Judgement(
                    AnalysisPhase.RUNNING, f"waiting for data: check {rec.name}: {what}{why}", holding=True
                )
        elif errors_past:
            last_error = _last_of(rec, Verdict.ERROR)
            return Judgement(
                AnalysisPhase.INCONCLUSIVE,
                f"check {rec.name}: {rec.consecutive_errors} query errors in a row (consecutiveErrorLimit "
                f"{analysis.consecutive_error_limit}), last: {last_error.message if last_error else '?'}",
            )
        elif rec.inconclusive > analysis.inconclusive_limit:
            last_unknown = _last_of(rec, Verdict.INCONCLUSIVE)
            return Judgement(
                AnalysisPhase.INCONCLUSIVE,
                f"check {rec.name} inconclusive: {last_unknown.message if last_unknown else 'no data'} "
                f"({rec.inconclusive} inconclusive measurement(s), inconclusiveLimit "
                f"{analysis.inconclusive_limit})",
            )
    progress = ", ".join(f"{r.name} {r.successful}/{analysis.count}" for r in records)
    if background:
        return Judgement(AnalysisPhase.RUNNING, f"{sum(r.successful for r in records)} Successful so far")
    if records and all(r.successful >= analysis.count for r in records):
        return Judgement(AnalysisPhase.SUCCESSFUL, f"every check passed {analysis.count} time(s): {progress}")
    if not records:
        # Only dry-run checks: nothing decides, so the step passes once each was measured `count` times.
        every = [find_record(run, c.name) or CheckRecord(name=c.name) for c in analysis.checks]
        if all(_measured(r) >= analysis.count for r in every):
            return Judgement(AnalysisPhase.SUCCESSFUL, "dry-run checks measured; none decides")
    return Judgement(AnalysisPhase.RUNNING, f"Successful measurements {progress}")


def _measured(rec: CheckRecord) -> int:
    return rec.successful + rec.failed + rec.inconclusive + rec.errors


# -- the gate shared by the analysis step and the background analysis --------------------------
def finish(run: AnalysisRun, phase: AnalysisPhase, message: str, now: datetime) -> None:
    run.phase, run.message, run.finished_at = phase, message[:1024], now


def _at(when: datetime) -> str:
    # An absolute time stays true for as long as status is read; a countdown would go stale.
    return when.astimezone(UTC).strftime("%H:%M:%SZ")


def gate(
    ctx: RolloutContext, d: Decision, run: AnalysisRun, analysis: api.Analysis, where: str
) -> StepResult:
    """What a run means for the rollout now: Continue (passed, skipped, or a background run that
    has not concluded), Wait (measuring, or held), or Fail (roll back)."""
    background = run.name == BACKGROUND
    # A promote skips a held run, or a step's run still measuring; a background run still measuring
    # leaves the promote to the step it is meant for.
    skippable = run.phase == AnalysisPhase.INCONCLUSIVE or (
        not background and run.phase == AnalysisPhase.RUNNING
    )
    if skippable and d.take(ctx, "promote"):
        finish(run, AnalysisPhase.SKIPPED, f"skipped by a promote; was: {run.message or 'running'}", ctx.now)
        d.event("AnalysisSkipped", f"{describe_run(run)} skipped by a promote")
        return Continue(past_user_pause=True)
    if run.phase == AnalysisPhase.INCONCLUSIVE:
        if not d.take(ctx, "retry"):
            return Wait(
                f"{where}: analysis inconclusive: {run.message}; `kubectl modelship promote` skips it, "
                "`retry` runs it again, `abort` rolls back",
                paused=True,
                for_promote=True,
            )
        run = new_run(run.name, run.step_index, analysis, ctx.now)
        put_run(d.status, run)
        d.event("AnalysisRetried", f"{describe_run(run)} started again by a retry")
    if run.phase in (AnalysisPhase.SUCCESSFUL, AnalysisPhase.SKIPPED):
        return Continue()
    if run.phase == AnalysisPhase.FAILED:
        return Fail("AnalysisFailed", f"{describe_run(run)}: {run.message}")
    verdict = judge(run, analysis, background)
    if verdict.phase == AnalysisPhase.FAILED:
        finish(run, verdict.phase, verdict.message, ctx.now)
        return Fail("AnalysisFailed", f"{describe_run(run)}: {verdict.message}")
    if verdict.phase == AnalysisPhase.INCONCLUSIVE:
        # Held, not over (no finishedAt): a promote, retry or abort ends it.
        run.phase, run.message = verdict.phase, verdict.message[:1024]
        d.event("AnalysisInconclusive", f"{describe_run(run)} inconclusive: {verdict.message}", warning=True)
        return gate(ctx, d, run, analysis, where)
    if verdict.phase == AnalysisPhase.SUCCESSFUL:
        finish(run, verdict.phase, verdict.message, ctx.now)
        d.event("AnalysisSuccessful", f"{describe_run(run)} passed: {verdict.message}")
        return Continue()
    run.message = verdict.message
    wake = next_measurement(run, analysis)
    if verdict.holding:
        return Wait(f"{where}: {verdict.message}; next measurement at {_at(wake)}", until=wake, paused=True)
    if background:
        d.wakes.append(wake)
        return Continue()
    return Wait(f"{where}: analysis running: {verdict.message}; next measurement at {_at(wake)}", until=wake)


def end_running(status: api.ModelDeploymentStatus, outcome: str, now: datetime) -> None:
    """The rollout ended (promoted, rolled back, superseded): runs still measuring stop. A background
    run that saw no failure until promotion counts as Successful."""
    for run in status.analysis_runs:
        if run.phase == AnalysisPhase.RUNNING:
            promoted = outcome == api.Outcome.PROMOTED
            run.phase = AnalysisPhase.SUCCESSFUL if promoted else AnalysisPhase.SKIPPED
            run.message = f"{run.message or ''}; the rollout ended: {outcome}".lstrip("; ")[:1024]
            run.finished_at = now


def start_or_get(
    d: Decision, name: str, step_index: int | None, analysis: api.Analysis, since: datetime, now: datetime
) -> AnalysisRun:
    """The run of this name begun at or after `since`, or a new one (announced by an Event)."""
    run = find_run(d.status, name)
    if run is None or run.started_at < since or run.step_index != step_index:
        run = new_run(name, step_index, analysis, now)
        put_run(d.status, run)
        checks = ", ".join(c.name for c in analysis.checks)
        d.event("AnalysisStarted", f"{describe_run(run)} started: {checks} every {analysis.interval}")
    return run
