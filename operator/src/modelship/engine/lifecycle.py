"""Which situation a ModelDeployment is in, and what each one decides outside a canary rollout.

nothing stable yet          -> first rollout (full size; nothing to roll back to)
spec is the stable version  -> steady (and a spec set back mid-rollout rolls back)
spec is the failed version  -> hold: stable serves until the spec changes or a retry
otherwise                   -> a rollout over stable (engine.canary)
"""

from __future__ import annotations

from modelship import api
from modelship.api import Outcome, RolloutFacts, RolloutKind
from modelship.engine import analysis, canary
from modelship.engine.context import Decision, Fail, RolloutContext, overdue


def decide(ctx: RolloutContext, d: Decision) -> None:
    s = d.status
    if s.failed_version and s.failed_version != ctx.target:
        s.failed_version = None  # the spec moved on; that failure no longer applies
    if s.stable_version is None:
        first_rollout(ctx, d)
    elif ctx.target == s.stable_version:
        steady(ctx, d)
    elif ctx.target == s.failed_version and "retry" not in ctx.actions:
        hold_failed(ctx, d)
    else:
        if s.failed_version == ctx.target and d.take(ctx, "retry"):
            s.failed_version = None
            d.event("RetryRequested", f"retrying the rollout of version {ctx.target}")
        failure = canary.progress(ctx, d)
        if failure is not None:
            abort(ctx, d, failure)
    for action in sorted(ctx.actions - d.used):
        # Recorded as handled all the same: a stale token must never fire later by surprise.
        d.event(
            "ActionIgnored",
            f"modelship.dev/{action} ignored: nothing to {action} now ({d.phase}: {d.message})",
            warning=True,
        )


def first_rollout(ctx: RolloutContext, d: Decision) -> None:
    """Nothing serves yet: run the version at full size; it becomes stable once Ready. There is
    nothing to roll back to, so a failure leaves it running and reports Degraded."""
    s, target = d.status, ctx.target
    latest = s.revisions[-1] if s.revisions else None
    if latest is None or latest.version != target or latest.outcome != Outcome.PROGRESSING:
        if latest is not None:
            d.finish_revision(ctx, latest.version, Outcome.SUPERSEDED, "replaced before it became Ready")
        d.new_revision(ctx)
        s.progress_started_at = ctx.now
        d.event("RolloutStarted", f"deploying version {target}")
    if s.rollout is None or s.rollout.version != target:
        s.rollout = RolloutFacts(
            kind=RolloutKind.FIRST, version=target, kept_deployment_found=ctx.state(target) is not None
        )
    d.replicas[target] = ctx.n
    d.serving_version = target
    state = ctx.state(target)
    if ctx.fully_ready(target, ctx.n):
        s.stable_version = target
        d.finish_revision(ctx, target, Outcome.PROMOTED)
        d.clear_rollout()
        d.event("VersionPromoted", f"version {target} is Ready and serving")
        d.healthy(ctx)
        return
    late = overdue(ctx, target, ctx.n, s.progress_started_at or ctx.now)
    if state is not None and state.crash_looping:
        why = f"version {target}: {state.crash_looping} pod(s) crash-looping"
        d.degraded("CrashLooping", f"{why}: {state.crash_reason}" if state.crash_reason else why)
    elif isinstance(late, Fail):
        d.degraded(late.reason, late.why)
    else:
        d.wakes.append(late)
        d.progressing(f"deploying version {target}: {ctx.ready(target)}/{ctx.n} pods Ready")


def steady(ctx: RolloutContext, d: Decision) -> None:
    s, stable = d.status, ctx.target
    if s.canary_version:
        # The spec went back to the stable version mid-rollout: the GitOps way to roll back.
        rolled = s.canary_version
        d.finish_revision(ctx, rolled, Outcome.ROLLED_BACK, f"spec.model.version set back to {stable}")
        d.event("RolledBack", f"rollout of version {rolled} stopped: spec is back on version {stable}")
        analysis.end_running(s, Outcome.ROLLED_BACK, ctx.now)
        d.clear_rollout()
    d.replicas[stable] = ctx.n
    d.serving_version = stable
    if ctx.fully_ready(stable, ctx.n):
        s.progress_started_at = None
        d.healthy(ctx)
        return
    # Scaling, a template change, or pods lost at rest: give it the progress deadline, then say
    # Degraded rather than Progressing forever.
    started = s.progress_started_at = s.progress_started_at or ctx.now
    late = overdue(ctx, stable, ctx.n, started)
    if isinstance(late, Fail):
        d.degraded(late.reason, late.why)
    else:
        d.wakes.append(late)
        d.progressing(f"version {stable}: {ctx.ready(stable)}/{ctx.n} pods Ready")


def hold_failed(ctx: RolloutContext, d: Decision) -> None:
    stable = d.status.stable_version or ""
    d.replicas.update({stable: ctx.n, ctx.target: 0})
    d.serving_version = stable
    rev = d.revision_of(ctx.target)
    why = rev.message if rev and rev.message else "the rollout failed"
    verb = "aborted" if rev and rev.outcome == Outcome.ABORTED else "rolled back"
    d.degraded(
        rev.reason if rev and rev.reason else "RolloutAborted",
        f"version {ctx.target} {verb}: {why}; version {stable} keeps serving. "
        "Change spec.model or run `kubectl modelship retry` to try again",
    )


def abort(ctx: RolloutContext, d: Decision, failure: Fail) -> None:
    d.finish_revision(ctx, ctx.target, failure.outcome, failure.why, failure.reason)
    analysis.end_running(d.status, failure.outcome, ctx.now)
    d.status.failed_version = ctx.target
    d.clear_rollout()
    d.step_ends_at, d.waiting_for_promote = None, False
    verb = "aborted" if failure.outcome == Outcome.ABORTED else "rolled back"
    d.event(failure.reason, f"rollout of version {ctx.target} {verb}: {failure.why}", warning=True)
    hold_failed(ctx, d)


def read_actions(md: api.ModelDeployment, status: api.ModelDeploymentStatus) -> frozenset[str]:
    """The action annotations with a token not handled yet; records each as handled."""
    new = set()
    for action in api.ACTIONS:
        token = md.metadata.annotations.get(api.ACTION_PREFIX + action)
        if token and status.handled_actions.get(action) != token:
            new.add(action)
            status.handled_actions[action] = token
    return frozenset(new)
