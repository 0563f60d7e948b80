"""The rollout engine, the pure core: from (spec, status, observed children, now) to a Plan.

Nothing here does I/O. Every decision is made from the object's status and what was observed,
so an operator that restarts at any point picks up exactly where the last one stopped: the step
index, when the step began, the kind of the rollout, which version failed, and which user actions
were already handled all live in status.

    context.py    the frozen inputs of a pass, handler results, the Decision they fill
    lifecycle.py  first rollout, steady state, a failed version held, the top-level dispatch
    canary.py     a rollout over stable: the pipeline of step handlers
    analysis.py   metric gates: which checks are due, recording measurements, a run's verdict
    traffic.py    weights: Ready-pod ratio or a Gateway API HTTPRoute
    plan.py       the Decision as writes, and the one function that computes status
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from modelship import api, children, conditions
from modelship.api import Phase
from modelship.engine.analysis import Due, Measured, due, record
from modelship.engine.context import Decision, Event, RolloutContext
from modelship.engine.lifecycle import decide, read_actions
from modelship.engine.plan import Plan, plan_of
from modelship.engine.traffic import canary_pods
from modelship.observation import Observed

__all__ = ["Due", "Event", "Measured", "Plan", "canary_pods", "due", "reconcile", "refused"]


def reconcile(
    md: api.ModelDeployment,
    observed: Observed,
    now: datetime,
    default_image: str = children.DEFAULT_SERVING_IMAGE,
    measurements: Sequence[Measured] = (),
) -> Plan:
    """Computes the writes that move `md` one step closer to its spec, and its next status.
    `measurements` are what the controller measured for `due(md, now)`; they are recorded first."""
    status = md.status.model_copy(deep=True)
    actions = read_actions(md, status)
    ctx = RolloutContext(md, observed, now, default_image, actions)
    decision = Decision(status=status)
    record(decision, md, measurements, now)
    decide(ctx, decision)
    return plan_of(ctx, decision)


def refused(
    md: api.ModelDeployment, planned: api.ModelDeploymentStatus, message: str, now: datetime
) -> api.ModelDeploymentStatus:
    """The status to report when the apiserver refused a child built from the spec (a bad
    resource quantity, say, that the ModelDeployment schema cannot check): Degraded, naming the
    apiserver's reason, with everything else as planned. Nothing else moves until the spec is fixed."""
    status = planned.model_copy(deep=True)
    status.phase = Phase.DEGRADED
    status.message = f"the apiserver refused a child object: {message}"[:1024]
    generation = md.metadata.generation
    for type_ in (conditions.READY, conditions.PROGRESSING):
        status.conditions = conditions.set_condition(
            status.conditions, type_, "False", "ChildRejected", status.message, generation, now
        )
    return status
