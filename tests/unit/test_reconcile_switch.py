"""The operator's core without canary steps: first deploy, safe switch, failure, rollback, history."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from modelship import children
from modelship.api import Outcome, Phase
from modelship.engine import reconcile
from modelship.observation import Observed

from .builders import T0, as_applied, healthy_at, later, md, new_version, running, settle, step


def deployments(plan_apply: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in plan_apply if o["kind"] == "Deployment"}


def service_selector(plan_apply: list[dict[str, Any]]) -> dict[str, str]:
    return cast(dict[str, str], next(o for o in plan_apply if o["kind"] == "Service")["spec"]["selector"])


def test_a_new_model_deployment_creates_its_version_and_service_and_reports_progress() -> None:
    # Given a new ModelDeployment and nothing in the cluster yet
    plan = reconcile(md("1", replicas=3), Observed(), T0)
    # Then it creates Deployment iris-1 with 3 replicas and a Service selecting version 1
    assert deployments(plan.apply)["iris-1"]["spec"]["replicas"] == 3
    assert service_selector(plan.apply) == {
        children.LABEL_MODEL_DEPLOYMENT: "iris",
        children.LABEL_VERSION: "1",
    }
    # And reports Progressing, with a first revision under way
    assert plan.status.phase == Phase.PROGRESSING
    assert [(r.revision, r.version, r.outcome) for r in plan.status.revisions] == [
        (1, "1", Outcome.PROGRESSING)
    ]


def test_a_version_becomes_stable_once_all_its_pods_are_ready() -> None:
    # Given version 1 created and its 3 pods Ready
    first = md("1", replicas=3)
    done, _, _ = settle(first, Observed(), T0)
    # Then it is stable, Healthy and Ready
    assert done.status.stable_version == "1"
    assert done.status.phase == Phase.HEALTHY
    ready = next(c for c in done.status.conditions if c.type == "Ready")
    assert (ready.status, ready.observed_generation) == ("True", 1)
    assert done.status.revisions[-1].outcome == Outcome.PROMOTED


def test_at_rest_the_operator_plans_no_writes() -> None:
    # Given a Healthy ModelDeployment whose children match the spec
    current, obs = healthy_at("1")
    # When it is reconciled again, later
    plan = reconcile(current, obs, later(3600))
    # Then nothing is written: no object, no scale, no delete, and the status is unchanged
    assert (plan.apply, plan.scale, plan.delete) == ([], {}, [])
    assert plan.status.wire() == current.status.wire()
    assert plan.wake_at is None


def test_a_new_version_runs_beside_the_old_one_until_it_is_fully_ready() -> None:
    # Given version 1 stable
    current, obs = healthy_at("1", replicas=4)
    # When the spec moves to version 2 and its pods are not Ready yet
    switched, obs, plan = step(new_version(current, "2"), obs, later(10), ready=False)
    # Then version 2 is created at full size, version 1 keeps all its pods and all the traffic
    assert deployments(plan.apply)["iris-2"]["spec"]["replicas"] == 4
    assert obs.versions["1"].replicas == 4
    assert not any(o["kind"] == "Service" for o in plan.apply)  # it keeps selecting version 1
    assert switched.status.phase == Phase.PROGRESSING


def test_the_service_moves_and_the_old_version_scales_to_zero_once_the_new_one_is_ready() -> None:
    # Given version 1 stable and the spec moved to version 2, whose pods become Ready
    current, obs = healthy_at("1", replicas=4)
    done, obs, plans = settle(new_version(current, "2"), obs, later(10))
    # Then version 2 is stable and serving, version 1 is kept at zero for a fast rollback
    assert done.status.stable_version == "2"
    assert done.status.phase == Phase.HEALTHY
    assert obs.versions["1"].replicas == 0
    selectors = [service_selector(p.apply) for p in plans if any(o["kind"] == "Service" for o in p.apply)]
    assert selectors[-1][children.LABEL_VERSION] == "2"
    outcomes = [(r.version, r.outcome) for r in done.status.revisions]
    assert outcomes == [("1", Outcome.SUPERSEDED), ("2", Outcome.PROMOTED)]


def test_a_version_not_ready_within_the_deadline_is_rolled_back_and_the_old_one_keeps_serving() -> None:
    # Given version 1 stable and a switch to version 2 whose pods never become Ready
    current, obs = healthy_at("1", replicas=3, deadline=60)
    rolling, obs, _ = step(
        new_version(current, "2", rollout={"progressDeadlineSeconds": 60}), obs, later(1), ready=False
    )
    # When the deadline passes
    failed, obs, plan = step(rolling, obs, later(62), ready=False)
    # Then version 2 is scaled to zero, version 1 keeps all its replicas
    assert obs.versions["2"].replicas == 0
    assert obs.versions["1"].replicas == 3
    # And status is Degraded, naming the cause and the version that failed
    assert failed.status.phase == Phase.DEGRADED
    ready = next(c for c in failed.status.conditions if c.type == "Ready")
    assert ready.reason == "ProgressDeadlineExceeded"
    assert "version 2" in (failed.status.message or "") and "0/3 Ready" in (failed.status.message or "")
    assert failed.status.failed_version == "2"
    assert [e.reason for e in plan.events] == ["ProgressDeadlineExceeded"]


def test_the_deadline_is_when_the_operator_asks_to_be_woken() -> None:
    current, obs = healthy_at("1", deadline=60)
    plan = reconcile(new_version(current, "2", rollout={"progressDeadlineSeconds": 60}), obs, later(5))
    assert plan.wake_at == later(65)


def test_a_failed_version_is_not_retried_until_the_spec_changes() -> None:
    # Given version 2 rolled back after its deadline
    current, obs = healthy_at("1", replicas=3, deadline=60)
    rolling, obs, _ = step(
        new_version(current, "2", rollout={"progressDeadlineSeconds": 60}), obs, later(1), ready=False
    )
    failed, obs, _ = step(rolling, obs, later(62), ready=False)
    # When it is reconciled again much later
    again, obs, plan = step(failed, obs, later(4000), ready=False)
    # Then nothing moves: version 2 stays at zero and no new rollout starts
    assert obs.versions["2"].replicas == 0
    assert again.status.phase == Phase.DEGRADED
    assert len(again.status.revisions) == len(failed.status.revisions)
    assert plan.events == []


def test_crash_looping_pods_roll_the_new_version_back_at_once() -> None:
    current, obs = healthy_at("1", replicas=3)
    rolling, obs, _ = step(new_version(current, "2"), obs, later(1), ready=False)
    obs = Observed(versions={**obs.versions, "2": running("2", 3, ready=0, crash=2)}, hashes=obs.hashes)
    failed, obs, _ = step(rolling, obs, later(5), ready=False)
    assert failed.status.phase == Phase.DEGRADED
    assert failed.status.revisions[-1].reason == "CanaryCrashLooping"
    assert obs.versions["2"].replicas == 0


def test_a_rollback_for_crash_looping_pods_says_why_they_exit() -> None:
    # Given version 2's pods crash-loop, their server's last line saying why
    current, obs = healthy_at("1", replicas=3)
    rolling, obs, _ = step(new_version(current, "2"), obs, later(1), ready=False)
    crashing = replace(
        running("2", 3, ready=0, crash=3), crash_reason="cannot download s3://m/k: access denied"
    )
    obs = Observed(versions={**obs.versions, "2": crashing}, hashes=obs.hashes)

    # When the operator reconciles
    failed, _, _ = step(rolling, obs, later(5), ready=False)

    # Then the status message names the reason, as the pod's log does
    assert failed.status.message is not None
    assert "version 2 rolled back" in failed.status.message
    assert "are crash-looping: cannot download s3://m/k: access denied; version 1 keeps serving" in (
        failed.status.message
    )


def test_setting_the_spec_back_to_a_kept_version_is_a_fast_rollback_that_skips_the_steps() -> None:
    # Given version 2 stable with version 1 kept at zero, and canary steps configured
    steps = [{"setWeight": 10}, {"pause": {}}]
    current, obs = healthy_at("1", replicas=4)
    current, obs, _ = settle(new_version(current, "2", rollout={"canary": {"steps": steps}}), obs, later(1))
    current, obs, _ = settle(
        current.model_copy(
            update={
                "metadata": current.metadata.model_copy(
                    update={"annotations": {"modelship.dev/promote": "a"}}
                )
            }
        ),
        obs,
        later(2),
    )
    assert current.status.stable_version == "2"
    # When the spec goes back to version 1 (as a git revert would)
    back, obs, _ = settle(new_version(current, "1", rollout={"canary": {"steps": steps}}), obs, later(100))
    # Then version 1 takes over without waiting at the pause step
    assert back.status.stable_version == "1"
    assert back.status.phase == Phase.HEALTHY
    assert obs.versions["1"].replicas == 4 and obs.versions["2"].replicas == 0


def test_only_revision_history_limit_old_versions_are_kept() -> None:
    # Given a history limit of 2 and four successive versions
    current, obs = healthy_at("1", replicas=2, revisionHistoryLimit=2)
    for i, version in enumerate(["2", "3", "4"], start=1):
        current, obs, _ = settle(new_version(current, version), obs, later(i * 100))
    # Then the stable version and the two before it remain; the oldest Deployment is deleted
    assert sorted(obs.versions) == ["2", "3", "4"]
    assert [r.version for r in current.status.revisions] == ["2", "3", "4"]


def test_a_deleted_stable_deployment_is_recreated_from_its_revision_record() -> None:
    # Given version 1 stable and a switch to version 2 under way
    current, obs = healthy_at("1", replicas=2)
    rolling, obs, _ = step(new_version(current, "2"), obs, later(1), ready=False)
    # When someone deletes the stable Deployment by hand
    gone = Observed(versions={"2": obs.versions["2"]}, hashes=obs.hashes)
    plan = reconcile(rolling, gone, later(2))
    # Then it comes back with version 1's model, taken from the revision history
    recreated = deployments(plan.apply)["iris-1"]
    env = {e["name"]: e["value"] for e in recreated["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELSHIP_MODEL_URI"] == "https://m.example/iris/1.skops"
    assert recreated["spec"]["replicas"] == 2


def test_observed_generation_follows_the_spec() -> None:
    current, obs = healthy_at("1")
    edited = new_version(current, "2")
    plan = reconcile(edited, obs, later(1))
    assert plan.status.observed_generation == edited.metadata.generation == 2
    assert all(c.observed_generation == 2 for c in plan.status.conditions)


def test_as_applied_tracks_the_plan() -> None:
    # The test helper itself: a scale in the plan shows up in the next observation.
    plan = reconcile(md("1", replicas=2), Observed(), T0)
    assert as_applied(plan, Observed()).versions["1"].replicas == 2


def test_a_stable_version_that_loses_its_pods_turns_degraded_after_the_deadline() -> None:
    # Given version 1 Healthy, whose pods then stop being Ready
    current, obs = healthy_at("1", replicas=3, deadline=60)
    sick = Observed(versions={"1": running("1", 3, ready=1)}, hashes=obs.hashes)
    # Then it is Progressing at first, and asks to be woken at the deadline
    first, _, plan = step(current, sick, later(10), ready=False)
    assert first.status.phase == Phase.PROGRESSING
    assert plan.wake_at == later(70)
    # And Degraded once the deadline has passed, naming the count
    late = reconcile(first, sick, later(71))
    assert late.status.phase == Phase.DEGRADED
    assert "1/3 Ready" in (late.status.message or "")
    # And Healthy again, with the clock cleared, once the pods are back
    back = reconcile(first, obs, later(80))
    assert back.status.phase == Phase.HEALTHY
    assert back.status.progress_started_at is None


def test_a_kept_deployment_deleted_by_hand_makes_a_change_back_a_canary_that_never_flips() -> None:
    # Given version 2 stable over version 1, kept at zero, and canary steps configured
    steps = [{"setWeight": 10}, {"pause": {}}]
    current, obs = healthy_at("1", replicas=4)
    current = new_version(current, "2", rollout={"canary": {"steps": steps}})
    current, obs, _ = settle(current, obs, later(1))
    current, obs, _ = settle(current.model_copy(update={"metadata": promoted(current)}), obs, later(2))
    assert current.status.stable_version == "2"
    # And someone deletes version 1's kept Deployment by hand
    obs = Observed(versions={"2": obs.versions["2"]}, hashes=obs.hashes)
    # When the spec goes back to version 1
    back = new_version(current, "1", rollout={"canary": {"steps": steps}})
    first, obs, _ = step(back, obs, later(100))
    # Then a canary starts, recorded as such with the inputs it was decided from
    facts = first.status.rollout
    assert facts is not None
    assert (facts.kind, facts.proven_by_revision, facts.kept_deployment_found) == ("Canary", 1, False)
    # And every later pass, with version 1's Deployment back, keeps walking the steps: it stops at
    # the pause waiting for a promote instead of promoting as a rollback
    later_passes, obs, _ = settle(first, obs, later(101))
    assert later_passes.status.rollout is not None and later_passes.status.rollout.kind == "Canary"
    assert later_passes.status.stable_version == "2"
    assert later_passes.status.phase == Phase.PAUSED
    assert later_passes.status.rollout.waiting_for_promote


def promoted(current: Any) -> Any:
    return current.metadata.model_copy(update={"annotations": {"modelship.dev/promote": "a"}})


def test_a_change_back_to_a_kept_version_is_recorded_as_a_rollback_with_no_step() -> None:
    # Given version 2 stable over version 1, kept at zero, and canary steps configured
    steps = [{"setWeight": 10}, {"pause": {}}]
    current, obs = healthy_at("1", replicas=4)
    current = new_version(current, "2", rollout={"canary": {"steps": steps}})
    current, obs, _ = settle(current, obs, later(1))
    current, obs, _ = settle(current.model_copy(update={"metadata": promoted(current)}), obs, later(2))
    # When the spec goes back to version 1, whose Deployment is kept, and its pods are slow
    back, obs, _ = step(
        new_version(current, "1", rollout={"canary": {"steps": steps}}), obs, later(100), False
    )
    # Then the rollout is recorded as a rollback proven by revision 1, with no current step
    facts = back.status.rollout
    assert facts is not None
    assert (facts.kind, facts.proven_by_revision, facts.kept_deployment_found) == ("Rollback", 1, True)
    assert facts.step_kind is None and not facts.waiting_for_promote
