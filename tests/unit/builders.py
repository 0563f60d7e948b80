"""Small builders that make unit tests read like stories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelship import api, children
from modelship.engine import Plan, reconcile
from modelship.observation import Observed, VersionState

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def md(
    version: str = "1",
    replicas: int = 4,
    steps: list[dict[str, Any]] | None = None,
    status: api.ModelDeploymentStatus | None = None,
    annotations: dict[str, str] | None = None,
    deadline: int = 600,
    generation: int = 1,
    **spec: Any,
) -> api.ModelDeployment:
    rollout: dict[str, Any] = {"progressDeadlineSeconds": deadline}
    if steps is not None:
        rollout["canary"] = {"steps": steps}
    return api.ModelDeployment.model_validate(
        {
            "metadata": {
                "name": "iris",
                "namespace": "ml",
                "uid": "uid-1",
                "generation": generation,
                "annotations": annotations or {},
            },
            "spec": {
                "model": {"version": version, "uri": f"https://m.example/iris/{version}.skops"},
                "replicas": replicas,
                "rollout": rollout,
                **spec,
            },
            "status": (status or api.ModelDeploymentStatus()).wire(),
        }
    )


def running(version: str, replicas: int, ready: int | None = None, crash: int = 0) -> VersionState:
    return VersionState(
        version=version,
        spec_hash=None,
        replicas=replicas,
        ready=replicas if ready is None else ready,
        updated=replicas,
        settled=True,
        crash_looping=crash,
    )


def observed(*states: VersionState) -> Observed:
    return Observed(versions={s.version: s for s in states})


def as_applied(plan: Plan, before: Observed, ready: bool = True) -> Observed:
    """What the cluster looks like once the plan is applied and (optionally) its pods are Ready:
    lets a test walk a rollout one reconcile at a time without a cluster."""
    versions = dict(before.versions)
    for obj in plan.apply:
        if obj["kind"] != "Deployment":
            continue
        version = obj["metadata"]["labels"][children.LABEL_VERSION]
        n = obj["spec"]["replicas"]
        versions[version] = VersionState(
            version,
            obj["metadata"]["annotations"][children.ANNOTATION_SPEC_HASH],
            n,
            n if ready else 0,
            n,
            True,
        )
    for name, n in plan.scale.items():
        version = name.removeprefix("iris-")
        old = versions[version]
        versions[version] = VersionState(
            version, old.spec_hash, n, n if ready else min(old.ready, n), n, True
        )
    if ready:  # every pod the cluster runs has become Ready by the next look
        versions = {
            v: VersionState(v, s.spec_hash, s.replicas, s.replicas, s.replicas, True)
            for v, s in versions.items()
        }
    hashes = dict(before.hashes)
    for kind, name in plan.delete:
        if kind == "Deployment":
            versions.pop(name.removeprefix("iris-"), None)
        hashes.pop(f"{kind}/{name}", None)
    for o in plan.apply:
        if o["kind"] != "Deployment":
            hashes[f"{o['kind']}/{o['metadata']['name']}"] = o["metadata"]["annotations"][
                children.ANNOTATION_SPEC_HASH
            ]
    return Observed(versions=versions, hashes=hashes)


def step(
    current: api.ModelDeployment, obs: Observed, now: datetime, ready: bool = True
) -> tuple[api.ModelDeployment, Observed, Plan]:
    """One reconcile, then the cluster catches up: returns the next object, world and plan."""
    plan = reconcile(current, obs, now)
    nxt = current.model_copy(deep=True)
    nxt.status = plan.status
    return nxt, as_applied(plan, obs, ready), plan


def settle(
    current: api.ModelDeployment, obs: Observed, now: datetime, passes: int = 10, ready: bool = True
) -> tuple[api.ModelDeployment, Observed, list[Plan]]:
    """Reconciles `passes` times at `now`, the cluster catching up after each, and checks that the
    rollout came to rest: the last pass plans no write and no event and leaves status as it was.
    A plan that oscillates, or needs more passes than given, fails here."""
    before, _, _ = walk(current, obs, now, passes - 1, ready)
    current, obs, plans = walk(current, obs, now, passes, ready)
    assert_at_rest(plans[-1], before)
    return current, obs, plans


def walk(
    current: api.ModelDeployment, obs: Observed, now: datetime, passes: int, ready: bool = True
) -> tuple[api.ModelDeployment, Observed, list[Plan]]:
    """`passes` reconciles, stopping wherever the rollout is (mid-step, say)."""
    plans = []
    for _ in range(passes):
        current, obs, plan = step(current, obs, now, ready)
        plans.append(plan)
    return current, obs, plans


def assert_at_rest(plan: Plan, reconciled: api.ModelDeployment) -> None:
    writes: dict[str, Any] = {
        "apply": [f"{o['kind']}/{o['metadata']['name']}" for o in plan.apply],
        "scale": plan.scale,
    }
    writes |= {"delete": plan.delete, "events": [e.reason for e in plan.events]}
    assert not any(writes.values()), f"the last pass still plans {writes}"
    assert plan.status.wire() == reconciled.status.wire(), "the last pass still changes status"


def healthy_at(version: str, replicas: int = 4, **kwargs: Any) -> tuple[api.ModelDeployment, Observed]:
    """A ModelDeployment whose `version` is stable and fully Ready."""
    first = md(version, replicas, **kwargs)
    done, obs, _ = settle(first, Observed(), T0)
    assert done.status.phase == api.Phase.HEALTHY
    return done, obs


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def with_spec(current: api.ModelDeployment, **changes: Any) -> api.ModelDeployment:
    """The same object after a user edit (a new generation)."""
    spec = current.spec.wire()
    for key, value in changes.items():
        spec[key] = value
    raw = current.model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["spec"] = spec
    raw["metadata"]["generation"] += 1
    return api.ModelDeployment.model_validate(raw)


def new_version(current: api.ModelDeployment, version: str, **changes: Any) -> api.ModelDeployment:
    return with_spec(
        current, model={"version": version, "uri": f"https://m.example/iris/{version}.skops"}, **changes
    )
