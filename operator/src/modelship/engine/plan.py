"""From a pass's Decision to what to write: the children that differ from what was observed, and
the one function that computes status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelship import api, children, conditions
from modelship.api import Phase
from modelship.engine.canary import active_steps
from modelship.engine.context import Decision, Event, RolloutContext
from modelship.engine.traffic import hash_of


@dataclass
class Plan:
    """What to write. `apply` holds whole objects whose content changed (server-side apply);
    `scale` holds Deployments whose content is unchanged but whose replica count is not."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    scale: dict[str, int] = field(default_factory=dict)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    status: api.ModelDeploymentStatus = field(default_factory=api.ModelDeploymentStatus)
    events: list[Event] = field(default_factory=list)
    wake_at: datetime | None = None


def plan_of(ctx: RolloutContext, d: Decision) -> Plan:
    plan = Plan(events=d.events)
    kept = kept_versions(ctx, d.status)
    d.status.revisions = [r for r in d.status.revisions if r.version in kept][
        -(ctx.spec.revision_history_limit + 2) :
    ]
    _keep_leaving_capacity(ctx, d, kept)
    for version in kept:
        _plan_version(ctx, d, plan, version, d.replicas.get(version, 0))
    for version in sorted(set(ctx.observed.versions) - set(kept)):
        plan.delete.append(("Deployment", children.deployment_name(ctx.md.metadata.name, version)))
    _plan_traffic(ctx, d, plan)
    plan.status = status_of(ctx, d)
    plan.wake_at = min(d.wakes) if d.wakes else None
    return plan


def _keep_leaving_capacity(ctx: RolloutContext, d: Decision, kept: list[str]) -> None:
    """A version leaving service without failing (a canary superseded, or the spec set back to
    stable) keeps as many of its Ready pods as the versions that stay lack, and keeps taking
    traffic meanwhile: stable, shrunk for the canary's share, needs time to be Ready at full size
    again, and dropping the canary at once would serve from fewer pods than spec.replicas (as
    Argo Rollouts' basic canary bounds scale-down by maxUnavailable). A failed or aborted version
    goes at once: taking traffic off it is the point. With a Gateway API route stable never shrank."""
    if ctx.routing is not None:
        return
    staying = [v for v, n in d.replicas.items() if n > 0]
    lacking = ctx.n - sum(min(ctx.ready(v), d.replicas[v]) for v in staying)
    for version in kept:
        if lacking <= 0:
            return
        if version in staying or version == d.status.failed_version:
            continue
        keep = min(ctx.ready(version), lacking)
        if keep > 0:
            d.replicas[version] = keep
            d.serving_version = None  # the Service selects every version's Ready pods
            lacking -= keep


def kept_versions(ctx: RolloutContext, status: api.ModelDeploymentStatus) -> list[str]:
    """Stable, the version in spec, and the most recent `revisionHistoryLimit` others."""
    keep = [v for v in (status.stable_version, ctx.target) if v]
    history: list[str] = []
    for rev in reversed(status.revisions):
        if rev.version not in keep and rev.version not in history:
            history.append(rev.version)
    return keep + history[: ctx.spec.revision_history_limit]


def _plan_traffic(ctx: RolloutContext, d: Decision, plan: Plan) -> None:
    name = ctx.md.metadata.name
    wanted = [children.build_service(ctx.md, name, d.serving_version)]
    if ctx.routing is not None:
        stable = d.status.stable_version or ctx.target
        canary = d.status.canary_version or stable
        wanted += [
            children.build_service(ctx.md, children.stable_service_name(name), stable, "stable"),
            children.build_service(ctx.md, children.canary_service_name(name), canary, "canary"),
            children.build_http_route(ctx.md, ctx.routing, d.route_weight),
        ]
    for obj in wanted:
        if ctx.observed.hashes.get(f"{obj['kind']}/{obj['metadata']['name']}") != hash_of(obj):
            plan.apply.append(obj)
    keep = {f"{o['kind']}/{o['metadata']['name']}" for o in wanted}
    for key in sorted(set(ctx.observed.hashes) - keep):  # routing was switched off
        kind, _, obj_name = key.partition("/")
        plan.delete.append((kind, obj_name))


def _plan_version(ctx: RolloutContext, d: Decision, plan: Plan, version: str, replicas: int) -> None:
    state = ctx.state(version)
    model: api.Model | None = None
    if version == ctx.target:
        model = ctx.spec.model
    elif state is None and replicas > 0:
        rev = d.revision_of(version)  # recreate a deleted kept version from its record
        if rev is not None:
            model = api.Model(version=version, uri=rev.uri, format=rev.format, sha256=rev.sha256, s3=rev.s3)
    if model is not None:
        desired = children.build_serving_deployment(ctx.md, model, replicas, ctx.default_image)
        if state is None or state.spec_hash != hash_of(desired):
            plan.apply.append(desired)
            return
    if state is not None and state.replicas != replicas:
        plan.scale[children.deployment_name(ctx.md.metadata.name, version)] = replicas


def status_of(ctx: RolloutContext, d: Decision) -> api.ModelDeploymentStatus:
    """The one place status is computed: the decision's record, the step facts, the summary
    phase and the conditions (which keep lastTransitionTime unless their status changed)."""
    s, generation = d.status, ctx.md.metadata.generation
    if s.rollout is not None:
        steps = active_steps(ctx, s.rollout)
        index = s.current_step_index
        at_step = s.rollout.kind != api.RolloutKind.FIRST and index is not None and index < len(steps)
        s.rollout.step_kind = steps[index].kind if at_step and index is not None else None
        s.rollout.step_ends_at = d.step_ends_at
        s.rollout.waiting_for_promote = d.waiting_for_promote
    s.observed_generation = generation
    s.phase, s.message = d.phase, d.message
    s.replicas = ctx.n
    serving = [d.serving_version] if d.serving_version else [s.stable_version, s.canary_version]
    s.ready_replicas = sum(ctx.ready(v) for v in set(serving) if v)
    rolling = d.phase in (Phase.PROGRESSING, Phase.PAUSED)
    conds = conditions.set_condition(
        s.conditions,
        conditions.PROGRESSING,
        "True" if rolling else "False",
        d.reason,
        d.message,
        generation,
        ctx.now,
    )
    available = s.ready_replicas > 0 or ctx.n == 0
    conds = conditions.set_condition(
        conds,
        conditions.AVAILABLE,
        "True" if available else "False",
        "MinimumReplicasAvailable" if available else "NoReadyReplicas",
        f"{s.ready_replicas}/{ctx.n} serving pods Ready",
        generation,
        ctx.now,
    )
    healthy = d.phase == Phase.HEALTHY
    s.conditions = conditions.set_condition(
        conds, conditions.READY, "True" if healthy else "False", d.reason, d.message, generation, ctx.now
    )
    return s
