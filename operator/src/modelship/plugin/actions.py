"""Choosing the annotation patch for a user action, or refusing an action that makes no sense now.

Every action is a JSON merge patch of `metadata.annotations` and nothing else: never spec, so
Argo CD sees no drift and `metadata.generation` does not move. The one-shot actions (promote,
promote-full, abort, retry) write a fresh token that the operator acts on once and records in
`status.handledActions`; pause and resume set and remove the level annotation
`modelship.dev/paused`.

An action the operator would ignore or lose (a promote when nothing waits for one, a retry when
nothing failed) is refused here with the reason, and nothing is written. The patch carries the
`resourceVersion` the decision was made on, so if the object changed in between the apiserver
answers 409 and the caller decides again on a fresh read.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelship.api import ACTION_PREFIX, ANNOTATION_PAUSED, StepKind
from modelship.plugin.view import RolloutView

PROMOTE = "promote"
PROMOTE_FULL = "promote-full"
ABORT = "abort"
RETRY = "retry"
PAUSE = "pause"
RESUME = "resume"
TOKEN_ACTIONS = (PROMOTE, PROMOTE_FULL, ABORT, RETRY)
ACTIONS = (*TOKEN_ACTIONS, PAUSE, RESUME)


class ActionRefused(Exception):
    """The action makes no sense in the object's current state; nothing was written."""


@dataclass(frozen=True)
class ActionPlan:
    action: str
    patch: dict[str, Any]
    summary: str  # what the operator will do, in the user's words


def new_token(now: datetime | None = None, suffix: str | None = None) -> str:
    """A value no earlier action used: the UTC time (readable in `kubectl get -o yaml`) plus a
    random suffix (two actions in the same second still differ)."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-{suffix or secrets.token_hex(3)}"


def annotation_patch(resource_version: str | None, annotations: dict[str, str | None]) -> dict[str, Any]:
    """A merge patch of annotations only (None removes the key), guarded by resourceVersion."""
    metadata: dict[str, Any] = {"annotations": annotations}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"metadata": metadata}


def plan_action(action: str, obj: dict[str, Any], token: str) -> ActionPlan:
    """The patch that performs `action` on `obj` (a ModelDeployment as the API serves it), or
    ActionRefused saying why it makes no sense now."""
    view = RolloutView.of(obj)
    resource_version = (obj.get("metadata") or {}).get("resourceVersion")
    if action == PAUSE:
        if view.paused_by_user:
            raise ActionRefused(f"{_ref(view)} is already paused")
        return ActionPlan(
            action, annotation_patch(resource_version, {ANNOTATION_PAUSED: "true"}), _pause_summary(view)
        )
    if action == RESUME:
        if not view.paused_by_user:
            hint = ""
            if view.waiting_for_promote:
                hint = (
                    f"; it is waiting at step {view.step_index + 1} for "
                    f"`kubectl modelship promote {view.name}`"
                )
            raise ActionRefused(f"{_ref(view)} is not paused{hint}")
        return ActionPlan(
            action,
            annotation_patch(resource_version, {ANNOTATION_PAUSED: None}),
            "resumed: the rollout continues from where it stopped"
            if view.rolling
            else "resumed: later rollouts walk their steps without stopping",
        )
    if action not in TOKEN_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    _check_can_act(view, action)
    summary = {
        PROMOTE: _check_promote,
        PROMOTE_FULL: _check_promote_full,
        ABORT: _check_abort,
        RETRY: _check_retry,
    }[action](view)
    return ActionPlan(action, annotation_patch(resource_version, {ACTION_PREFIX + action: token}), summary)


def _ref(view: RolloutView) -> str:
    return f"modeldeployment {view.name}"


def _check_can_act(view: RolloutView, action: str) -> None:
    status = view.status
    if status.observed_generation is None:
        raise ActionRefused(f"{_ref(view)} has no status yet: the operator has not seen it (is it running?)")
    if not view.fresh:
        raise ActionRefused(
            f"{_ref(view)}: the operator has not caught up with generation "
            f"{view.md.metadata.generation} yet (status is for generation {status.observed_generation}); "
            "try again in a moment"
        )
    pending = view.pending(action)
    if pending:
        raise ActionRefused(
            f"{_ref(view)}: an earlier {action} ({pending}) has not been handled yet; wait for the operator"
        )


def _not_rolling(view: RolloutView, verb: str) -> ActionRefused:
    status = view.status
    if status.stable_version is None:
        why = (
            f"version {view.target} is the first version deployed: it runs at full size at once, "
            "without canary steps, and there is nothing to roll back to"
        )
    elif view.retryable:
        why = (
            f"the rollout of version {view.target} failed and version {status.stable_version} serves; "
            f"`kubectl modelship retry {view.name}` tries it again"
        )
    elif status.stable_version == view.target:
        why = f"no rollout in progress (version {view.target} is stable, phase {view.phase})"
    else:
        why = f"no canary rollout in progress (phase {view.phase}: {status.message or 'no message'})"
    return ActionRefused(f"nothing to {verb} in {_ref(view)}: {why}")


def _check_promote(view: RolloutView) -> str:
    if not view.rolling:
        raise _not_rolling(view, "promote")
    step = view.current_step
    n, total = view.step_index + 1, len(view.steps)
    full = f"`kubectl modelship promote {view.name} --full` skips all remaining steps"
    if step is None:
        raise ActionRefused(
            f"nothing to promote in {_ref(view)}: the rollout of version {view.target} is past its last "
            "step and is promoted as soon as its pods are Ready"
        )
    if step.kind == StepKind.ANALYSIS and not view.waiting_for_promote:
        return f"promoted: the analysis at step {n}/{total} is skipped and the rollout continues"
    if not view.waiting_for_promote:
        raise ActionRefused(
            f"nothing to promote in {_ref(view)}: the rollout of version {view.target} is at step "
            f"{n}/{total} ({step.describe()}), not waiting for a promote; {full}"
        )
    return f"promoted: the rollout of version {view.target} continues past step {n}/{total}"


def _check_promote_full(view: RolloutView) -> str:
    if not view.rolling:
        raise _not_rolling(view, "promote")
    if view.current_step is None:
        raise ActionRefused(
            f"nothing to skip in {_ref(view)}: the rollout of version {view.target} is past its last "
            "step and is promoted as soon as its pods are Ready"
        )
    return (
        f"promoted in full: version {view.target} skips its remaining steps and becomes stable "
        "once all its pods are Ready"
    )


def _check_abort(view: RolloutView) -> str:
    if not view.rolling:
        raise _not_rolling(view, "abort")
    return (
        f"aborted: version {view.status.stable_version} takes all traffic back and version "
        f"{view.target} scales to zero"
    )


def _check_retry(view: RolloutView) -> str:
    if view.retryable:
        return f"retrying: the rollout of version {view.target} starts again from step 1"
    held = view.held_analysis
    if held is not None:
        return f"retrying: the inconclusive analysis ({held.name}) measures again from now"
    status = view.status
    if status.stable_version is None:
        why = (
            f"version {view.target} is the first version deployed; a first rollout never gives up "
            "(there is nothing to roll back to), it becomes stable once its pods are Ready"
        )
    else:
        why = f"no version has failed (phase {view.phase}: {status.message or 'no message'})"
    raise ActionRefused(f"nothing to retry in {_ref(view)}: {why}")


def _pause_summary(view: RolloutView) -> str:
    if view.rolling:
        return f"paused: the rollout of version {view.target} stops at the end of its current step"
    return "paused: the next canary rollout stops at the end of its first step until resumed"
