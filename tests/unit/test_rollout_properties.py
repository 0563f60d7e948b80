"""Properties of the engine over any story a user and a cluster can tell: spec edits, actions,
pods that are or are not Ready, Deployments deleted by hand, operator restarts, time passing.

Whatever happens, (1) no pass takes traffic from the stable version before its replacement's
pods are Ready, (2) the recorded kind of a rollout never changes while it runs, and (3) once
the story ends and pods become Ready, the rollout comes to rest: a pass that plans nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelship import api
from modelship.engine import Plan, reconcile
from modelship.observation import Observed

from .builders import T0, as_applied, assert_at_rest, healthy_at, new_version
from .test_reconcile_canary import annotate

REPLICAS = 4
STEP_LISTS: list[list[dict[str, Any]]] = [
    [],
    [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 60}],
    [{"setWeight": 50}, {"pause": {}}],
    [{"setWeight": 10}, {"setWeight": 30}, {"pause": {"duration": "1m"}}, {"setWeight": 100}],
]


@dataclass(frozen=True)
class SpecEdit:
    version: str
    steps: int  # index into STEP_LISTS


@dataclass(frozen=True)
class Action:
    name: str


@dataclass(frozen=True)
class UserPause:
    on: bool


@dataclass(frozen=True)
class Pass:
    ready: bool
    seconds: int


@dataclass(frozen=True)
class Restart:
    """A fresh operator: it knows only what the apiserver stores (status round-trips as JSON)."""


@dataclass(frozen=True)
class DeleteByHand:
    version: str


VERSIONS = st.sampled_from(["1", "2", "3"])
OPERATIONS = st.one_of(
    st.builds(SpecEdit, VERSIONS, st.integers(0, len(STEP_LISTS) - 1)),
    st.builds(Action, st.sampled_from(api.ACTIONS)),
    st.builds(UserPause, st.booleans()),
    st.builds(Pass, st.booleans(), st.integers(0, 90)),
    st.just(Restart()),
    st.builds(DeleteByHand, VERSIONS),
)


def desired_replicas(plan: Plan, obs: Observed, version: str) -> int:
    for obj in plan.apply:
        if obj["kind"] == "Deployment" and obj["metadata"]["labels"]["modelship.dev/version"] == version:
            return int(obj["spec"]["replicas"])
    if f"iris-{version}" in plan.scale:
        return plan.scale[f"iris-{version}"]
    state = obs.versions.get(version)
    return state.replicas if state else 0


def assert_stable_keeps_traffic(before: api.ModelDeployment, obs: Observed, plan: Plan) -> None:
    """Stable shrinks only by as many pods as its replacement has Ready, and is replaced only by
    a version whose every pod is Ready."""
    stable = before.status.stable_version
    if stable is None:
        return
    kept = desired_replicas(plan, obs, stable)
    if kept >= REPLICAS:
        return
    successor = plan.status.stable_version
    if successor != stable:
        assert obs.ready(successor) >= REPLICAS, f"{stable} replaced by {successor} before it was Ready"
        return
    canary = before.status.canary_version or plan.status.canary_version
    assert kept + obs.ready(canary) >= REPLICAS, (
        f"stable {stable} cut to {kept} pods with {obs.ready(canary)} Ready pods of {canary} beside it"
    )


def assert_kind_kept(before: api.ModelDeployment, after: api.ModelDeploymentStatus) -> None:
    was, now = before.status.rollout, after.rollout
    if was is not None and now is not None and was.version == now.version:
        assert now.kind == was.kind, f"rollout of {was.version} flipped from {was.kind} to {now.kind}"


class Story:
    def __init__(self) -> None:
        self.current, self.obs = healthy_at("1", replicas=REPLICAS, deadline=60)
        self.seconds = 0
        self.tokens = 0

    def reconcile_once(self, ready: bool) -> Plan:
        plan = reconcile(self.current, self.obs, T0 + timedelta(seconds=self.seconds))
        assert_stable_keeps_traffic(self.current, self.obs, plan)
        assert_kind_kept(self.current, plan.status)
        nxt = self.current.model_copy(deep=True)
        nxt.status = plan.status
        self.current, self.obs = nxt, as_applied(plan, self.obs, ready)
        return plan

    def tell(self, op: object) -> None:
        if isinstance(op, SpecEdit):
            self.current = new_version(
                self.current,
                op.version,
                rollout={"progressDeadlineSeconds": 60, "canary": {"steps": STEP_LISTS[op.steps]}},
            )
        elif isinstance(op, Action):
            self.tokens += 1
            self.current = annotate(self.current, **{f"modelship.dev/{op.name}": f"t{self.tokens}"})
        elif isinstance(op, UserPause):
            self.current = annotate(self.current, **{"modelship.dev/paused": str(op.on).lower()})
        elif isinstance(op, Pass):
            self.seconds += op.seconds
            self.reconcile_once(op.ready)
        elif isinstance(op, Restart):
            wire = self.current.model_dump(by_alias=True, mode="json", exclude_none=True)
            self.current = api.ModelDeployment.model_validate(wire)
        elif isinstance(op, DeleteByHand):
            versions = {v: s for v, s in self.obs.versions.items() if v != op.version}
            self.obs = Observed(versions=versions, hashes=self.obs.hashes)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATIONS, max_size=25))
def test_any_story_keeps_stable_serving_never_flips_a_decision_and_comes_to_rest(ops: list[object]) -> None:
    # Given version 1 stable, and any story told to it
    story = Story()
    for op in ops:
        story.tell(op)
    # When the story ends: the user pause is lifted and every pod the operator asks for is Ready
    story.tell(UserPause(False))
    story.seconds += 1
    for _ in range(40):
        story.reconcile_once(ready=True)
    # Then the next pass plans nothing: the rollout is at rest (done, held, or waiting)
    before_last = story.current.model_copy(deep=True)
    assert_at_rest(story.reconcile_once(ready=True), before_last)
