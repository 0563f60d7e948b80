"""A canary left without failing keeps serving from its Ready pods until stable is back at full size.

With the Ready-pod ratio, stable shrinks as the canary grows; if a canary with Ready pods were scaled
to zero the moment it is left, the model would serve from fewer pods than spec.replicas until
stable's new pods are Ready (the soak saw 2 of 4). A failed or aborted canary still goes at once.
"""

from __future__ import annotations

from typing import Any

from modelship import api, children
from modelship.api import Phase
from modelship.engine import Plan, reconcile
from modelship.observation import Observed

from .builders import later, new_version, running, settle, with_spec
from .test_reconcile_canary import STEPS, annotate, start_canary


def at_half(replicas: int = 10) -> tuple[api.ModelDeployment, Observed]:
    """Version 2's canary at 50%, waiting for a promote: 5 Ready pods of each version."""
    current, obs = start_canary(replicas)
    current, obs, _ = settle(current, obs, later(1), passes=6)
    current, obs, _ = settle(current, obs, later(61), passes=6)
    assert current.status.canary_weight == 50 and current.status.phase == Phase.PAUSED
    assert (obs.versions["1"].ready, obs.versions["2"].ready) == (5, 5)
    return current, obs


def replicas_of(plan: Plan, obs: Observed, version: str) -> int:
    """The replicas `plan` leaves `version` at: scaled, applied, or as observed."""
    name = children.deployment_name("iris", version)
    if name in plan.scale:
        return plan.scale[name]
    applied = [o for o in plan.apply if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    return int(applied[0]["spec"]["replicas"]) if applied else obs.versions[version].replicas


def service_selector(plan: Plan) -> dict[str, Any] | None:
    """The selector the plan gives the Service; None when it leaves the Service as it is."""
    services = [o for o in plan.apply if o["kind"] == "Service"]
    return dict(services[0]["spec"]["selector"]) if services else None


def stable_regrowing(obs: Observed, ready: int) -> Observed:
    """Stable scaled back to 10 with `ready` of them Ready; the left canary's 5 still Ready."""
    return Observed(versions={**obs.versions, "1": running("1", 10, ready=ready)}, hashes=obs.hashes)


def test_a_canary_superseded_by_a_newer_version_serves_until_stable_is_ready_again() -> None:
    # Given version 2's canary at 50% on 10 replicas
    current, obs = at_half()
    # When version 3 replaces it, and stable has only its 5 Ready pods so far
    plan = reconcile(new_version(current, "3", rollout={"canary": {"steps": STEPS}}), obs, later(70))
    # Then version 2 keeps its 5 Ready pods, and the Service goes on selecting every version's
    # Ready pods (as it did at 50%: it is not rewritten)
    assert replicas_of(plan, obs, "2") == 5
    assert service_selector(plan) is None


def test_a_left_canary_shrinks_as_stable_becomes_ready_and_goes_once_stable_is_full() -> None:
    # Given the spec set back to version 1 while version 2's canary was at 50%
    current, obs = at_half()
    back = with_spec(current, model={"version": "1", "uri": "https://m.example/iris/1.skops"})
    first = reconcile(back, obs, later(70))
    assert replicas_of(first, obs, "2") == 5
    assert service_selector(first) is None  # every version's Ready pods, as at 50%
    back.status = first.status
    # When 8 of stable's 10 pods are Ready, then version 2 keeps the 2 that are missing
    eight = reconcile(back, stable_regrowing(obs, 8), later(75))
    assert replicas_of(eight, stable_regrowing(obs, 8), "2") == 2
    # When all 10 are, then version 2 goes, and the Service selects stable alone
    full = stable_regrowing(obs, 10)
    done = reconcile(back, full, later(80))
    assert replicas_of(done, full, "2") == 0
    assert (service_selector(done) or {}).get(children.LABEL_VERSION) == "1"


def test_an_aborted_canary_is_taken_out_of_service_at_once() -> None:
    # Given version 2's canary at 50% on 10 replicas
    current, obs = at_half()
    # When the user aborts it, with stable at 5 Ready pods
    plan = reconcile(annotate(current, **{"modelship.dev/abort": "a1"}), obs, later(70))
    # Then version 2 goes to zero at once and the Service selects stable alone: taking traffic off
    # the canary is what an abort is for
    assert replicas_of(plan, obs, "2") == 0
    assert (service_selector(plan) or {}).get(children.LABEL_VERSION) == "1"
