"""Every ModelDeployment the Lua tests use, run through Argo CD's own engine (util/lua with
gopher-lua, the settings manager reading argocd/argocd-cm.yaml, the API server's merge patch):
it gives the expected results, and the same ones as the fast lupa copy in tests/argocd."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.argocd import argocd_lua
from tests.argocd.conftest import Captured
from tests.argocd.test_argocd_actions import ACTIONS, ANNOTATION, EXPECTED_ENABLED, paused_by_user
from tests.argocd_engine.argocd import engine

EXPECTED_HEALTH = {
    "unobserved": "Progressing",
    "healthy": "Healthy",
    "generation-ahead": "Progressing",
    "paused": "Suspended",
    "promoted": "Healthy",
    "progressing": "Progressing",
    "degraded": "Degraded",
}
# Tokens carry the second the action ran; two runs may straddle a second.
TOKEN = re.compile(r"argocd-\d{8}T\d{6}Z")


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return TOKEN.sub("argocd-<time>", value) if isinstance(value, str) else value


def fixtures(captured: Captured) -> dict[str, dict[str, Any]]:
    """The captured states and the variants the Lua tests derive from them."""
    objects = {state: captured[state] for state in EXPECTED_HEALTH}
    for state in EXPECTED_HEALTH:
        objects[f"{state}+user-paused"] = paused_by_user(captured[state])
    healthy = captured["healthy"]
    spec = {**healthy["spec"], "model": {**healthy["spec"]["model"], "version": "v9"}}
    objects["healthy+spec-ahead"] = {**healthy, "spec": spec}
    progressing = captured["progressing"]
    earlier = {**progressing["status"]["revisions"][-1], "revision": 1, "outcome": "Superseded"}
    revisions = [earlier, *progressing["status"]["revisions"]]
    objects["progressing+served-before"] = {
        **progressing,
        "status": {**progressing["status"], "revisions": revisions},
    }
    objects["unobserved+paused-by-action"] = argocd_lua.action("pause", captured["unobserved"])
    return objects


@pytest.fixture(scope="module")
def objects(captured: Captured) -> dict[str, dict[str, Any]]:
    return fixtures(captured)


def test_argocd_assesses_each_captured_state_as_expected(captured: Captured) -> None:
    # Given each captured state; When Argo CD's health code assesses it
    results = engine([{"op": "health", "object": captured[s]} for s in EXPECTED_HEALTH])
    # Then each has the expected health
    seen = {
        state: r.get("health", {}).get("status") or r.get("error")
        for state, r in zip(EXPECTED_HEALTH, results, strict=True)
    }
    assert seen == EXPECTED_HEALTH


def test_argocd_and_lupa_agree_on_health_and_message_for_every_fixture(
    objects: dict[str, dict[str, Any]],
) -> None:
    results = engine([{"op": "health", "object": obj} for obj in objects.values()])
    argocd = {name: r.get("health") or r for name, r in zip(objects, results, strict=True)}
    lupa = {name: argocd_lua.health(obj) for name, obj in objects.items()}
    assert argocd == lupa


def test_argocd_discovery_enables_the_expected_actions(captured: Captured) -> None:
    results = engine([{"op": "discovery", "object": captured[s]} for s in EXPECTED_ENABLED])
    enabled = {
        state: {a["name"] for a in r.get("actions", []) if not a.get("disabled")} or r.get("error")
        for state, r in zip(EXPECTED_ENABLED, results, strict=True)
    }
    assert enabled == EXPECTED_ENABLED


def test_argocd_and_lupa_agree_on_discovery_for_every_fixture(objects: dict[str, dict[str, Any]]) -> None:
    results = engine([{"op": "discovery", "object": obj} for obj in objects.values()])
    for (name, obj), result in zip(objects.items(), results, strict=True):
        assert "error" not in result, (name, result)
        # Argo CD lists every offered action (displayName, iconClass, disabled); so does lupa's run
        argocd = {
            a["name"]: (a.get("displayName"), a.get("iconClass"), bool(a.get("disabled")))
            for a in result["actions"]
        }
        lupa_raw = argocd_lua.run("actions/discovery.lua", obj)
        lupa = {
            k: (v.get("displayName"), v.get("iconClass"), bool(v.get("disabled")))
            for k, v in lupa_raw.items()
        }
        assert argocd == lupa, name


@pytest.mark.parametrize("action", ACTIONS)
def test_argocd_and_lupa_agree_on_each_action_for_every_fixture(
    objects: dict[str, dict[str, Any]], action: str
) -> None:
    # Given every fixture; When Argo CD runs the action the way its API server does
    results = engine([{"op": "action", "action": action, "object": obj} for obj in objects.values()])
    for (name, obj), result in zip(objects.items(), results, strict=True):
        assert "error" not in result, (name, result)
        lupa_obj = argocd_lua.action(action, obj)
        lupa_patch = argocd_lua.merge_patch(obj, lupa_obj)
        # Then the object and the merge patch it sends are lupa's, and the patch touches one
        # annotation at most (none when it is already as wanted)
        assert _untimed(result["object"]) == _untimed(lupa_obj), name
        assert _untimed(result["patch"]) == _untimed(lupa_patch), name
        assert set(result["patch"]) <= {"metadata"}, name
        assert set(result["patch"].get("metadata", {})) <= {"annotations"}, name
        assert set(result["patch"].get("metadata", {}).get("annotations", {})) <= {ANNOTATION[action]}, name


def test_a_one_shot_action_run_twice_in_a_second_writes_a_new_token_in_argocd(captured: Captured) -> None:
    # Given an object whose annotation and handled token already hold this second's token
    obj = captured["degraded"]
    (first_run,) = engine([{"op": "action", "action": "promote", "object": obj}])
    first = first_run["object"]["metadata"]["annotations"][ANNOTATION["promote"]]
    handled = {**obj["status"].get("handledActions", {}), "promote": first}
    meta = {
        **obj["metadata"],
        "annotations": {**obj["metadata"]["annotations"], ANNOTATION["promote"]: first},
    }
    again = {**obj, "metadata": meta, "status": {**obj["status"], "handledActions": handled}}
    # When Argo CD runs it again
    (second_run,) = engine([{"op": "action", "action": "promote", "object": again}])
    # Then the token differs, so the operator acts on it
    assert second_run["object"]["metadata"]["annotations"][ANNOTATION["promote"]] != first
