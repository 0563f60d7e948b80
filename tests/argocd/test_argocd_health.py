"""The Argo CD health check (argocd/health.lua), run by a real Lua 5.1 in Argo CD's sandbox on
ModelDeployments captured live from the local cluster in each state."""

from __future__ import annotations

from tests.argocd import argocd_lua
from tests.argocd.conftest import Captured


def test_a_healthy_object_whose_stable_version_is_the_spec_version_is_healthy(captured: Captured) -> None:
    # Given v1 stable and Healthy; When Argo CD assesses it
    result = argocd_lua.health(captured["healthy"])
    # Then it is Healthy, with the operator's message
    assert result == {"status": "Healthy", "message": "version v1 serves with 2 replica(s)"}


def test_an_object_the_operator_has_not_seen_is_progressing(captured: Captured) -> None:
    # Given an object just created, without status
    assert "status" not in captured["unobserved"]
    # Then it is Progressing, waiting for the operator
    result = argocd_lua.health(captured["unobserved"])
    assert result["status"] == "Progressing"
    assert "Waiting for the Modelship operator" in result["message"]


def test_an_object_whose_spec_is_ahead_of_its_status_is_progressing(captured: Captured) -> None:
    # Given v2 just applied: generation 2, status (still Healthy on v1) from generation 1
    obj = captured["generation-ahead"]
    assert (obj["metadata"]["generation"], obj["status"]["observedGeneration"]) == (2, 1)
    assert obj["status"]["phase"] == "Healthy"
    # Then it is Progressing, not Healthy
    result = argocd_lua.health(obj)
    assert result["status"] == "Progressing"
    assert "observe generation 2" in result["message"]


def test_a_canary_waiting_for_a_promote_is_suspended(captured: Captured) -> None:
    result = argocd_lua.health(captured["paused"])
    assert result == {"status": "Suspended", "message": "step 2: waiting for `kubectl modelship promote`"}


def test_a_canary_waiting_for_its_pods_is_progressing(captured: Captured) -> None:
    result = argocd_lua.health(captured["progressing"])
    assert result["status"] == "Progressing"
    assert result["message"] == captured["progressing"]["status"]["message"]


def test_a_rolled_back_version_is_degraded_with_the_reason(captured: Captured) -> None:
    # Given v3 rolled back after its progress deadline, v2 still serving
    obj = captured["degraded"]
    # Then Argo CD shows Degraded, with the operator's message saying why
    result = argocd_lua.health(obj)
    assert result == {"status": "Degraded", "message": obj["status"]["message"]}
    assert "version v3 rolled back" in result["message"]


def test_healthy_is_not_claimed_while_another_version_is_stable(captured: Captured) -> None:
    # Given a Healthy status whose stable version differs from the spec (as a stale copy could be)
    obj = captured["healthy"]
    obj = {**obj, "spec": {**obj["spec"], "model": {**obj["spec"]["model"], "version": "v9"}}}
    # Then the check does not call it Healthy
    assert argocd_lua.health(obj)["status"] == "Progressing"
