"""A rollout over a stable version: a fixed pipeline of small handlers.

    start (decide the kind, once) -> user actions -> failure checks -> edited steps
        -> the current step -> promotion

Each handler reads the frozen context and answers Continue (go on), Wait (stop here for now:
why, and until when) or Fail (roll back: why). What it asks for -- replicas, traffic, status,
events -- goes into the pass's Decision. The kind of rollout (switch, canary, rollback to a kept
version) is decided when the rollout starts and recorded in `status.rollout`; every later pass
reads it from there, so a Deployment deleted by hand, a restart or a spec edit never flips it.

A new kind of canary step is one entry in `api.StepKind` and one handler in STEP_HANDLERS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from modelship import api
from modelship.api import Outcome, RolloutFacts, RolloutKind, StepKind
from modelship.engine import analysis
from modelship.engine.context import (
    Continue,
    Decision,
    Fail,
    RolloutContext,
    StepResult,
    Wait,
    overdue,
    steps_hash,
)
from modelship.engine.traffic import router_for

# Revisions that prove a version: it served as stable at some point.
PROVEN = (Outcome.PROMOTED, Outcome.SUPERSEDED)


def active_steps(ctx: RolloutContext, facts: RolloutFacts | None) -> list[api.Step]:
    """The steps this rollout walks: none for a rollback (the version is already proven)."""
    return [] if facts is not None and facts.kind == RolloutKind.ROLLBACK else ctx.steps


# -- start: the one place the kind of a rollout is decided ---------------------------------------
def decide_kind(ctx: RolloutContext, d: Decision, earlier: list[api.Revision]) -> RolloutFacts:
    proven = next((r for r in reversed(earlier) if r.version == ctx.target and r.outcome in PROVEN), None)
    kept = ctx.state(ctx.target) is not None
    if proven is not None and kept:
        kind = RolloutKind.ROLLBACK
    else:
        kind = RolloutKind.CANARY if ctx.steps else RolloutKind.SWITCH
    return RolloutFacts(
        kind=kind,
        version=ctx.target,
        from_version=d.status.stable_version,
        proven_by_revision=proven.revision if proven else None,
        kept_deployment_found=kept,
    )


def start(ctx: RolloutContext, d: Decision) -> None:
    s = d.status
    if s.canary_version == ctx.target and s.rollout is None:
        # A rollout begun by an operator that did not record facts: decide now, once, from the
        # revisions before this one, and keep going where it is.
        s.rollout = decide_kind(ctx, d, s.revisions[:-1])
        return
    if s.canary_version == ctx.target:
        return
    previous = s.canary_version
    if previous:
        d.finish_revision(ctx, previous, Outcome.SUPERSEDED, f"replaced by version {ctx.target}")
        d.event("RolloutSuperseded", f"rollout of version {previous} replaced by version {ctx.target}")
    s.rollout = decide_kind(ctx, d, list(s.revisions))
    d.new_revision(ctx)
    s.canary_version = ctx.target
    s.canary_weight = 0
    s.current_step_index = 0
    s.steps_hash = steps_hash(ctx.steps)
    s.progress_started_at = s.step_started_at = ctx.now
    s.analysis_runs = []  # the last rollout's runs stay visible until this one starts
    kind = "rollback" if s.rollout.kind == RolloutKind.ROLLBACK else "rollout"
    d.event("RolloutStarted", f"{kind} of version {ctx.target} started; version {s.stable_version} serves")


# -- the handlers --------------------------------------------------------------------------------
def user_actions(ctx: RolloutContext, d: Decision) -> StepResult:
    if d.take(ctx, "abort"):
        return Fail("AbortedByUser", "aborted by user", Outcome.ABORTED)
    return Continue()


def failure_checks(ctx: RolloutContext, d: Decision) -> StepResult:
    state = ctx.state(ctx.target)
    if state is not None and state.crash_looping:
        why = f"{state.crash_looping} pod(s) of version {ctx.target} are crash-looping"
        return Fail("CanaryCrashLooping", f"{why}: {state.crash_reason}" if state.crash_reason else why)
    return Continue()


def edited_steps(ctx: RolloutContext, d: Decision) -> StepResult:
    """Steps edited mid-rollout: never take traffic away abruptly; resume at the first step whose
    weight is at least the current one."""
    new_hash = steps_hash(ctx.steps)
    if d.status.steps_hash == new_hash:
        return Continue()
    weight = d.status.canary_weight or 0
    steps = active_steps(ctx, d.status.rollout)
    index = next(
        (i for i, s in enumerate(steps) if s.set_weight is not None and s.set_weight >= weight), len(steps)
    )
    d.status.steps_hash = new_hash
    d.status.current_step_index = index
    d.status.step_started_at = ctx.now
    d.event("StepsChanged", f"canary steps changed mid-rollout; continuing at step {index + 1}")
    return Continue()


def current_step(ctx: RolloutContext, d: Decision) -> StepResult:
    """Walks the steps from the recorded index; several may complete in one pass."""
    steps = active_steps(ctx, d.status.rollout)
    # Past the last step there is nothing left to skip: the action is left untaken (and reported
    # as ignored), so the promotion keeps its start and its one StepsCompleted.
    if (d.status.current_step_index or 0) < len(steps) and d.take(ctx, "promote-full"):
        enter_step(ctx, d, len(steps), steps, "promoted in full by user")
    for _ in range(len(steps) + 1):
        index = d.status.current_step_index or 0
        if index >= len(steps):
            return Continue()
        result = STEP_HANDLERS[steps[index].kind](ctx, d, steps[index])
        if not isinstance(result, Continue):
            return result
        if ctx.paused_by_user and not result.past_user_pause:
            return Wait("paused by user; run `kubectl modelship resume` to continue", paused=True)
        enter_step(ctx, d, index + 1, steps)
    return Continue()


def promotion(ctx: RolloutContext, d: Decision) -> StepResult:
    """Past the last step: the canary takes all traffic, then becomes stable. Without steps it is
    a blue-green switch: the new version runs at full size beside the old one and the Service
    moves only once it is fully Ready."""
    stable = d.status.stable_version or ""
    if active_steps(ctx, d.status.rollout):
        d.status.canary_weight = 100
        done = size(ctx, d, 100)
    else:
        d.replicas.update({stable: ctx.n, ctx.target: ctx.n})
        d.serving_version = stable
        done = ctx.fully_ready(ctx.target, ctx.n)
    if not done:
        return await_ready(ctx, d, "promotion")
    d.finish_revision(ctx, stable, Outcome.SUPERSEDED, f"replaced by version {ctx.target}")
    d.finish_revision(ctx, ctx.target, Outcome.PROMOTED)
    analysis.end_running(d.status, Outcome.PROMOTED, ctx.now)
    d.status.stable_version = ctx.target
    d.clear_rollout()
    d.replicas.update({stable: 0, ctx.target: ctx.n})
    d.serving_version = ctx.target
    d.event("VersionPromoted", f"version {ctx.target} promoted to stable; version {stable} scaled to 0")
    d.healthy(ctx)
    return Continue()


def background_analysis(ctx: RolloutContext, d: Decision) -> StepResult:
    """spec.rollout.canary.analysis, from step `startingStep` until promotion. A failure rolls back
    like a failed step; an inconclusive run holds the rollout where it is."""
    spec = ctx.spec.rollout.canary.analysis if ctx.spec.rollout.canary else None
    facts = d.status.rollout
    if spec is None or facts is None or facts.kind != RolloutKind.CANARY:
        return Continue()
    if (d.status.current_step_index or 0) < spec.starting_step:
        return Continue()
    since = d.status.progress_started_at or ctx.now
    run = analysis.start_or_get(d, analysis.BACKGROUND, None, spec, since, ctx.now)
    return analysis.gate(ctx, d, run, spec, "background analysis")


PIPELINE: tuple[Callable[[RolloutContext, Decision], StepResult], ...] = (
    user_actions,
    failure_checks,
    edited_steps,
    background_analysis,
    current_step,
    promotion,
)


def progress(ctx: RolloutContext, d: Decision) -> Fail | None:
    """Runs the pipeline until a handler waits or fails; a Fail is the caller's to act on."""
    start(ctx, d)
    for handler in PIPELINE:
        result = handler(ctx, d)
        if isinstance(result, Fail):
            return result
        if isinstance(result, Wait):
            d.wait(result)
            return None
    return None


# -- one handler per kind of step ----------------------------------------------------------------
def set_weight_step(ctx: RolloutContext, d: Decision, step: api.Step) -> StepResult:
    assert step.set_weight is not None
    d.status.canary_weight = step.set_weight
    if size(ctx, d, step.set_weight):
        return Continue()
    return await_ready(ctx, d, f"step: canary weight {step.set_weight}%")


def pause_step(ctx: RolloutContext, d: Decision, step: api.Step) -> StepResult:
    assert step.pause is not None
    size(ctx, d, d.status.canary_weight or 0)
    number = (d.status.current_step_index or 0) + 1
    if step.pause.duration is None:
        if d.take(ctx, "promote"):
            return Continue(past_user_pause=True)
        return Wait(f"step {number}: waiting for `kubectl modelship promote`", paused=True, for_promote=True)
    ends = (d.status.step_started_at or ctx.now) + api.parse_duration(step.pause.duration)
    if ctx.now >= ends:
        return Continue()
    d.step_ends_at = ends
    # An absolute end stays true for as long as status is read; a countdown would go stale.
    until = ends.astimezone(UTC).strftime("%H:%M:%SZ")
    return Wait(f"step {number}: pause {step.pause.duration}, until {until}", until=ends, paused=True)


def analysis_step(ctx: RolloutContext, d: Decision, step: api.Step) -> StepResult:
    """Measures the canary at the weight it has until the analysis passes, fails (roll back) or is
    inconclusive (held until a promote, retry or abort). Wakes at the next due measurement."""
    assert step.analysis is not None
    size(ctx, d, d.status.canary_weight or 0)
    index = d.status.current_step_index or 0
    since = d.status.step_started_at or ctx.now
    run = analysis.start_or_get(d, analysis.step_run_name(index), index, step.analysis, since, ctx.now)
    return analysis.gate(ctx, d, run, step.analysis, f"step {index + 1}")


STEP_HANDLERS: dict[StepKind, Callable[[RolloutContext, Decision, api.Step], StepResult]] = {
    StepKind.SET_WEIGHT: set_weight_step,
    StepKind.PAUSE: pause_step,
    StepKind.ANALYSIS: analysis_step,
}


# -- shared by the handlers ----------------------------------------------------------------------
def size(ctx: RolloutContext, d: Decision, weight: int) -> bool:
    """Records the replicas and traffic for `weight`; True once the weight holds."""
    sizing = router_for(ctx).size(ctx, d.status, weight)
    d.replicas.update(sizing.replicas)
    d.serving_version = sizing.serving_version
    d.route_weight = sizing.route_weight
    return sizing.holds


def await_ready(ctx: RolloutContext, d: Decision, what: str) -> StepResult:
    """Waits for the canary's pods, within the progress deadline counted from the step start."""
    want = d.replicas.get(ctx.target, 0)
    if ctx.paused_by_user:
        return Wait(f"paused by user at {what}", paused=True)
    late = overdue(ctx, ctx.target, want, d.status.step_started_at or ctx.now)
    if isinstance(late, Fail):
        return late
    ready = ctx.ready(ctx.target)
    return Wait(f"rolling out version {ctx.target} ({what}): {ready}/{want} canary pods Ready", until=late)


def enter_step(ctx: RolloutContext, d: Decision, index: int, steps: list[api.Step], why: str = "") -> None:
    d.status.current_step_index = index
    d.status.step_started_at = ctx.now
    if index < len(steps):
        d.event("StepStarted", f"step {index + 1}/{len(steps)}: {steps[index].describe()}")
    elif steps:
        d.event("StepsCompleted", why or "all canary steps completed; promoting")
