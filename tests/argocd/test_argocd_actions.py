"""The Argo CD resource actions (argocd/actions), run by a real Lua 5.1 in Argo CD's sandbox on
ModelDeployments captured live: discovery offers what makes sense in each state, and each action
changes annotations only."""

from __future__ import annotations

from typing import Any

import pytest

from modelship.plugin.actions import ActionRefused, plan_action
from tests.argocd import argocd_lua
from tests.argocd.conftest import Captured

ACTIONS = ("promote", "promote-full", "abort", "retry", "pause", "resume")
ANNOTATION = {
    "promote": "modelship.dev/promote",
    "promote-full": "modelship.dev/promote-full",
    "abort": "modelship.dev/abort",
    "retry": "modelship.dev/retry",
    "pause": "modelship.dev/paused",
    "resume": "modelship.dev/paused",
}
EXPECTED_ENABLED = {
    "unobserved": {"pause"},
    "healthy": {"pause"},
    "generation-ahead": {"pause"},
    "paused": {"promote", "promote-full", "abort", "pause"},
    "progressing": {"promote-full", "abort", "pause"},
    "degraded": {"retry", "pause"},
    "promoted": {"pause"},
}


def paused_by_user(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    annotations = {**(meta.get("annotations") or {}), "modelship.dev/paused": "true"}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


@pytest.mark.parametrize("state", sorted(EXPECTED_ENABLED))
def test_discovery_enables_only_the_actions_that_make_sense(captured: Captured, state: str) -> None:
    assert argocd_lua.enabled_actions(captured[state]) == EXPECTED_ENABLED[state]


def test_discovery_offers_resume_instead_of_pause_while_paused_by_user(
    captured: Captured,
) -> None:
    # Given a canary waiting for a promote that a user also paused
    enabled = argocd_lua.enabled_actions(paused_by_user(captured["paused"]))
    # Then resume is offered instead of pause; promote still passes the pause (the operator then
    # holds the next step for the user pause)
    assert enabled == {"promote", "promote-full", "abort", "resume"}


@pytest.mark.parametrize("state", sorted(EXPECTED_ENABLED))
def test_discovery_agrees_with_what_kubectl_modelship_accepts(captured: Captured, state: str) -> None:
    obj = captured[state]
    accepted = set()
    for action in ACTIONS:
        try:
            plan_action(action, obj, "token")
        except ActionRefused:
            continue
        accepted.add(action)
    assert argocd_lua.enabled_actions(obj) == accepted


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("state", ["paused", "degraded"])
def test_each_action_changes_only_its_annotation(captured: Captured, state: str, action: str) -> None:
    # Given a live object (resume needs one a user paused)
    obj = captured[state] if action != "resume" else paused_by_user(captured[state])
    # When Argo CD runs the action
    patch = argocd_lua.merge_patch(obj, argocd_lua.action(action, obj))
    # Then the patch it sends touches exactly one annotation, and nothing else
    assert list(patch) == ["metadata"]
    assert list(patch["metadata"]) == ["annotations"]
    assert list(patch["metadata"]["annotations"]) == [ANNOTATION[action]]


@pytest.mark.parametrize("action", ["promote", "promote-full", "abort", "retry"])
def test_a_one_shot_action_writes_a_token_the_operator_has_not_handled(
    captured: Captured, action: str
) -> None:
    # Given an object whose annotation and handled token already hold this second's token
    obj = captured["degraded"]
    first = argocd_lua.action(action, obj)["metadata"]["annotations"][ANNOTATION[action]]
    handled = {**obj["status"].get("handledActions", {}), action: first}
    meta = {**obj["metadata"], "annotations": {**obj["metadata"]["annotations"], ANNOTATION[action]: first}}
    again = {**obj, "metadata": meta, "status": {**obj["status"], "handledActions": handled}}
    # When the action runs again within the same second
    second = argocd_lua.action(action, again)["metadata"]["annotations"][ANNOTATION[action]]
    # Then it writes a different token, so the operator acts on it
    assert first.startswith("argocd-")
    assert second != first


def test_pause_and_resume_write_the_level_annotation(captured: Captured) -> None:
    # Given an object with other annotations (kubectl apply's last-applied-configuration)
    obj = captured["promoted"]
    assert len(obj["metadata"]["annotations"]) > 1
    paused = argocd_lua.action("pause", obj)
    assert argocd_lua.merge_patch(obj, paused) == {
        "metadata": {"annotations": {"modelship.dev/paused": "true"}}
    }
    resumed = argocd_lua.action("resume", paused)
    assert argocd_lua.merge_patch(paused, resumed) == {
        "metadata": {"annotations": {"modelship.dev/paused": None}}
    }


def test_resume_of_an_object_whose_only_annotation_is_the_pause_still_unpauses(captured: Captured) -> None:
    # Given an object created without annotations (kubectl create), then paused through Argo CD
    obj = captured["unobserved"]
    assert "annotations" not in obj["metadata"]
    paused = argocd_lua.action("pause", obj)
    # When resumed: removing the only annotation would come back as [] and be undone by Argo CD
    resumed = argocd_lua.action("resume", paused)
    # Then the annotation says "false", which the operator does not treat as paused
    assert resumed["metadata"]["annotations"] == {"modelship.dev/paused": "false"}
    assert "pause" in argocd_lua.enabled_actions(resumed)


def test_the_promote_action_sent_live_promoted_the_canary_without_a_new_generation(
    captured: Captured,
) -> None:
    # Given the promote action's patch was sent to the canary waiting at its pause
    patch = captured.promote_patch
    # Then it carried one annotation, and v2 became stable with the generation unchanged
    assert list(patch["metadata"]["annotations"]) == ["modelship.dev/promote"]
    promoted = captured["promoted"]
    assert promoted["status"]["stableVersion"] == "v2"
    assert promoted["metadata"]["generation"] == captured["paused"]["metadata"]["generation"]
    token = patch["metadata"]["annotations"]["modelship.dev/promote"]
    assert promoted["status"]["handledActions"]["promote"] == token


def test_discovery_offers_no_step_skipping_on_a_rollback_and_agrees_with_the_plugin(
    captured: Captured,
) -> None:
    # Given the rolling canary v3, as if v3 had served before and the operator had recorded the
    # rollout as a rollback (which skips the steps, so there is no current step)
    obj = captured["progressing"]
    earlier = {**obj["status"]["revisions"][-1], "revision": 1, "outcome": "Superseded"}
    rollout = {k: v for k, v in obj["status"]["rollout"].items() if k != "stepKind"}
    rollout |= {"kind": "Rollback", "provenByRevision": 1, "keptDeploymentFound": True}
    revisions = [earlier, *obj["status"]["revisions"]]
    obj = {**obj, "status": {**obj["status"], "revisions": revisions, "rollout": rollout}}
    # Then promote-full is not offered (nothing to skip), abort and pause are
    assert argocd_lua.enabled_actions(obj) == {"abort", "pause"}
    with pytest.raises(ActionRefused):
        plan_action("promote-full", obj, "token")
