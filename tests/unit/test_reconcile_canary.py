"""Canary steps in the pure core: weights as pod counts, pauses, promote, abort, retry, edits."""

from __future__ import annotations

from typing import Any

from modelship import api
from modelship.api import Outcome, Phase, parse_duration
from modelship.engine import canary_pods, reconcile

from .builders import healthy_at, later, new_version, settle, step, walk

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"duration": "60s"}},
    {"setWeight": 50},
    {"pause": {}},
]


def annotate(current: api.ModelDeployment, **annotations: str) -> api.ModelDeployment:
    """A `kubectl modelship` action: annotations change, the spec (and generation) do not."""
    meta = current.metadata.model_copy(
        update={"annotations": {**current.metadata.annotations, **annotations}}
    )
    return current.model_copy(update={"metadata": meta})


def start_canary(replicas: int = 10, steps: list[dict[str, Any]] = STEPS) -> tuple[Any, Any]:
    current, obs = healthy_at("1", replicas=replicas)
    return new_version(current, "2", rollout={"canary": {"steps": steps}}), obs


def test_weights_become_ready_pod_counts() -> None:
    assert [canary_pods(10, w) for w in (0, 1, 20, 50, 99, 100)] == [0, 1, 2, 5, 10, 10]
    assert canary_pods(3, 10) == 1  # any weight above zero gets a pod
    assert canary_pods(0, 50) == 0


def test_durations_parse() -> None:
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("250ms").total_seconds() == 0.25


def test_the_first_step_gives_the_canary_its_share_of_ready_pods() -> None:
    # Given version 1 stable with 10 replicas and a canary of version 2
    current, obs = start_canary()
    # When the first step (setWeight 20) has settled
    current, obs, _ = settle(current, obs, later(1), passes=6)
    # Then 2 canary pods and 8 stable pods serve, and the rollout waits in the timed pause
    assert (obs.versions["2"].replicas, obs.versions["1"].replicas) == (2, 8)
    assert current.status.canary_weight == 20
    assert current.status.current_step_index == 1
    assert current.status.phase == Phase.PAUSED


def test_stable_shrinks_only_as_canary_pods_become_ready_within_the_surge() -> None:
    # Given a canary whose pods are not Ready yet
    current, obs = start_canary()
    current, obs, _ = step(current, obs, later(1), ready=False)
    # Then stable keeps all 10 pods and the canary gets its 2 pods within the surge (25% of 10 = 3)
    assert obs.versions["1"].replicas == 10
    assert obs.versions["2"].replicas == 2
    assert current.status.phase == Phase.PROGRESSING


def test_the_surge_bounds_the_pods_above_spec_replicas() -> None:
    # Given a canary at 50% of 10 replicas with a 10% surge and pods that are slow to be Ready
    steps = [{"setWeight": 50}]
    current, obs = healthy_at("1", replicas=10)
    current = new_version(current, "2", rollout={"canary": {"steps": steps, "maxSurgePercent": 10}})
    current, obs, _ = step(current, obs, later(1), ready=False)
    # Then only one pod runs above the 10 asked for
    assert obs.versions["1"].replicas + obs.versions["2"].replicas == 11


def test_a_timed_pause_ends_on_time_and_asks_to_be_woken_then() -> None:
    current, obs = start_canary()
    current, obs, plans = settle(current, obs, later(1), passes=6)
    assert plans[-1].wake_at == later(61)
    # When 60 seconds have passed since the pause began
    current, obs, _ = settle(current, obs, later(61), passes=6)
    # Then the next weight applies and the rollout waits for a promote
    assert current.status.canary_weight == 50
    assert (obs.versions["2"].replicas, obs.versions["1"].replicas) == (5, 5)
    assert current.status.phase == Phase.PAUSED
    assert "promote" in (current.status.message or "")


def test_a_restarted_operator_does_not_restart_a_timed_pause() -> None:
    # Given a rollout 40s into its 60s pause
    current, obs = start_canary()
    current, obs, _ = settle(current, obs, later(1), passes=6)
    # When a fresh operator reconciles from status alone at 41s and then at 61s
    mid = reconcile(current, obs, later(41))
    # Then it wakes at the original end, not 60s after its own start
    assert mid.wake_at == later(61)


def test_promote_ends_an_indefinite_pause_and_the_canary_becomes_stable() -> None:
    current, obs = start_canary()
    current, obs, _ = settle(current, obs, later(1), passes=6)
    current, obs, _ = settle(current, obs, later(61), passes=6)
    # When the user promotes
    current, obs, plans = settle(annotate(current, **{"modelship.dev/promote": "t1"}), obs, later(70))
    # Then version 2 is stable with all 10 pods, version 1 is at zero
    assert current.status.stable_version == "2"
    assert current.status.phase == Phase.HEALTHY
    assert (obs.versions["2"].replicas, obs.versions["1"].replicas) == (10, 0)
    assert current.status.handled_actions == {"promote": "t1"}
    assert "VersionPromoted" in [e.reason for p in plans for e in p.events]


def test_the_same_promote_token_acts_once() -> None:
    # Given two indefinite pauses, the rollout waiting at the first
    steps: list[dict[str, Any]] = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 30}, {"pause": {}}]
    current, obs = start_canary(steps=steps)
    current, obs, _ = settle(current, obs, later(1))
    assert current.status.current_step_index == 1
    # When one promote is given and the operator reconciles many times
    current, obs, _ = settle(annotate(current, **{"modelship.dev/promote": "t1"}), obs, later(2), passes=20)
    # Then the second pause still waits
    assert current.status.current_step_index == 3
    assert current.status.phase == Phase.PAUSED


def test_a_promote_given_before_any_pause_is_not_saved_for_later() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 10}, {"pause": {}}]
    current, obs = start_canary(steps=steps)
    current, obs, _ = settle(annotate(current, **{"modelship.dev/promote": "early"}), obs, later(1))
    assert current.status.current_step_index == 1
    assert current.status.phase == Phase.PAUSED


def test_promote_full_skips_every_remaining_step() -> None:
    current, obs = start_canary()
    current, obs, _ = walk(current, obs, later(1), passes=3)
    current, obs, _ = settle(annotate(current, **{"modelship.dev/promote-full": "x"}), obs, later(2))
    assert current.status.stable_version == "2"


def test_promote_full_past_the_last_step_is_ignored_and_restarts_nothing() -> None:
    # Given a canary past its last step, its pods at full size not all Ready yet
    current, obs = start_canary(steps=[{"setWeight": 50}])
    current, obs, _ = walk(current, obs, later(1), passes=3)
    current, obs, _ = step(current, obs, later(1), ready=False)
    assert "(promotion)" in (current.status.message or "")
    started = current.status.step_started_at
    # When the user promotes in full
    current, _, plan = step(
        annotate(current, **{"modelship.dev/promote-full": "x"}), obs, later(5), ready=False
    )
    # Then it is reported as ignored, and the promotion neither starts again nor completes its steps twice
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "ActionIgnored")]
    assert (current.status.current_step_index, current.status.step_started_at) == (1, started)


def test_abort_sends_all_traffic_back_to_stable_until_a_retry() -> None:
    current, obs = start_canary()
    current, obs, _ = settle(current, obs, later(1), passes=6)
    # When the user aborts
    current, obs, plans = settle(annotate(current, **{"modelship.dev/abort": "a1"}), obs, later(5))
    # Then stable has all pods back, the canary none, and status says Degraded: aborted
    assert (obs.versions["1"].replicas, obs.versions["2"].replicas) == (10, 0)
    assert current.status.phase == Phase.DEGRADED
    assert current.status.revisions[-1].outcome == Outcome.ABORTED
    assert [e.reason for p in plans for e in p.events] == ["AbortedByUser"]
    # When the user retries
    current, obs, _ = settle(annotate(current, **{"modelship.dev/retry": "r1"}), obs, later(10), passes=6)
    # Then the rollout starts over as a new revision
    assert current.status.canary_version == "2"
    assert current.status.revisions[-1].outcome == Outcome.PROGRESSING
    assert current.status.revisions[-1].revision == current.status.revisions[-2].revision + 1


def test_a_user_pause_holds_the_current_step() -> None:
    steps = [{"setWeight": 20}, {"setWeight": 50}]
    current, obs = start_canary(steps=steps)
    current, obs, _ = settle(annotate(current, **{"modelship.dev/paused": "true"}), obs, later(1))
    assert current.status.phase == Phase.PAUSED
    assert current.status.canary_weight == 20
    resumed = annotate(current, **{"modelship.dev/paused": "false"})
    current, obs, _ = settle(resumed, obs, later(2), passes=20)
    assert current.status.stable_version == "2"


def test_edited_steps_mid_rollout_continue_without_taking_traffic_away() -> None:
    current, obs = start_canary()
    current, obs, _ = settle(current, obs, later(1), passes=6)
    current, obs, _ = settle(current, obs, later(61), passes=6)
    assert current.status.canary_weight == 50
    # When the user replaces the steps with a slower ramp
    edited = [{"setWeight": 10}, {"setWeight": 30}, {"setWeight": 60}, {"pause": {}}]
    spec_edit = new_version(current, "2", rollout={"canary": {"steps": edited}})
    current, obs, plans = settle(spec_edit, obs, later(70), passes=6)
    # Then it continues at the first step not below the current weight (60), never back to 10
    assert current.status.canary_weight == 60
    assert "StepsChanged" in [e.reason for p in plans for e in p.events]


def test_a_never_ready_canary_is_rolled_back_after_the_deadline() -> None:
    current, obs = healthy_at("1", replicas=4, deadline=30)
    rolling = new_version(current, "2", rollout={"progressDeadlineSeconds": 30, "canary": {"steps": STEPS}})
    rolling, obs, _ = step(rolling, obs, later(1), ready=False)
    failed, obs, _ = step(rolling, obs, later(40), ready=False)
    assert failed.status.phase == Phase.DEGRADED
    assert (obs.versions["1"].replicas, obs.versions["2"].replicas) == (4, 0)
    assert failed.status.revisions[-1].outcome == Outcome.ROLLED_BACK


def test_during_a_weighted_step_the_service_selects_every_version() -> None:
    current, obs = start_canary()
    plan = reconcile(current, obs, later(1))
    service = next(o for o in plan.apply if o["kind"] == "Service")
    assert "modelship.dev/version" not in service["spec"]["selector"]


ROUTED = {"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}]}}}


def route_weights(plan: Any) -> list[int] | None:
    route = next((o for o in plan.apply if o["kind"] == "HTTPRoute"), None)
    if route is None:
        return None
    return [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]]


def test_with_gateway_api_the_route_carries_the_exact_weight_once_canary_pods_are_ready() -> None:
    # Given version 1 stable and a routed canary of version 2
    current, obs = healthy_at("1", replicas=10)
    steps = [{"setWeight": 20}, {"pause": {}}]
    current = new_version(current, "2", rollout={"canary": {"steps": steps, **ROUTED}})
    # When the canary pods are not Ready yet
    current, obs, plan = step(current, obs, later(1), ready=False)
    # Then stable keeps its full size, the canary gets 2 pods, and the route sends it nothing yet
    assert (obs.versions["1"].replicas, obs.versions["2"].replicas) == (10, 2)
    assert route_weights(plan) == [100, 0]
    # When they are Ready
    current, obs, plans = settle(current, obs, later(2))
    # Then the route gives the canary exactly 20% and the rollout waits at the pause
    assert [route_weights(p) for p in plans if route_weights(p)] == [[80, 20]]
    assert current.status.phase == Phase.PAUSED


def test_with_gateway_api_promotion_moves_the_stable_service_and_resets_the_route() -> None:
    current, obs = healthy_at("1", replicas=4)
    current = new_version(current, "2", rollout={"canary": {"steps": [{"setWeight": 50}], **ROUTED}})
    current, obs, plans = settle(current, obs, later(1), passes=12)
    assert current.status.stable_version == "2"
    services = {
        o["metadata"]["name"]: o["spec"]["selector"].get("modelship.dev/version")
        for p in plans
        for o in p.apply
        if o["kind"] == "Service"
    }
    assert services["iris-stable"] == "2" and services["iris-canary"] == "2"
    assert [w for p in plans if (w := route_weights(p))][-1] == [100, 0]
    assert obs.versions["1"].replicas == 0


def test_a_promote_while_paused_by_the_user_still_passes_the_pause() -> None:
    # Given a rollout waiting for a promote, then paused by the user
    current, obs = start_canary(steps=[{"setWeight": 50}, {"pause": {}}, {"setWeight": 75}])
    current, obs, _ = settle(current, obs, later(1))
    paused = annotate(current, **{"modelship.dev/paused": "true"})
    # When the user promotes
    current, obs, _ = settle(annotate(paused, **{"modelship.dev/promote": "p"}), obs, later(2))
    # Then the pause is passed, and the rollout holds at the next step because of the user pause
    assert current.status.current_step_index == 2
    assert current.status.phase == Phase.PAUSED
    assert "paused by user" in (current.status.message or "")


def test_one_promote_passes_one_pause_even_when_the_next_is_reached_at_once() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    current, obs = start_canary(steps=steps)
    current, obs, _ = settle(current, obs, later(1))
    current, obs, _ = settle(annotate(current, **{"modelship.dev/promote": "p"}), obs, later(2))
    assert current.status.current_step_index == 3


def test_an_action_that_does_not_apply_is_reported_and_not_kept_for_later() -> None:
    # Given a rollout in a timed pause
    current, obs = start_canary()
    current, obs, _ = settle(current, obs, later(1), passes=6)
    # When the user annotates promote (there is no indefinite pause to pass)
    _, _, plan = step(annotate(current, **{"modelship.dev/promote": "early"}), obs, later(2))
    # Then a Warning event says it was ignored, and the token counts as handled
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "ActionIgnored")]
    assert plan.status.handled_actions["promote"] == "early"


def test_a_timed_pause_message_names_its_end() -> None:
    current, obs = start_canary()
    current, _, _ = settle(current, obs, later(1), passes=6)
    assert current.status.message == "step 2: pause 60s, until 12:01:01Z"
