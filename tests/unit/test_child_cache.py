"""Which child updates wake a pass: only those that change what a pass reads."""

from __future__ import annotations

from typing import Any

from modelship.child_cache import DEPLOYMENTS, PODS, ChildCache
from modelship.observation import essentials


def raw_pod(resource_version: str, ready: bool, waiting: str | None = None) -> dict[str, Any]:
    """A pod as the apiserver sends it, owned by the ModelDeployment ml/iris."""
    return {
        "metadata": {
            "name": "iris-1-abc",
            "namespace": "ml",
            "resourceVersion": resource_version,
            "labels": {"modelship.dev/model-deployment": "iris", "modelship.dev/version": "1"},
        },
        "spec": {"nodeName": "kwok-node-0"},
        "status": {
            "conditions": [{"type": "Ready", "status": str(ready)}],
            "containerStatuses": [
                {
                    "restartCount": 0,
                    "ready": ready,
                    "state": {"waiting": {"reason": waiting}} if waiting else {},
                }
            ],
        },
    }


def raw_deployment(resource_version: str, ready: int, available: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "iris-1",
            "namespace": "ml",
            "resourceVersion": resource_version,
            "generation": 1,
            "labels": {"modelship.dev/model-deployment": "iris", "modelship.dev/version": "1"},
        },
        "spec": {"replicas": 2},
        "status": {"readyReplicas": ready, "availableReplicas": available, "observedGeneration": 1},
    }


def woken() -> tuple[ChildCache, list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []
    return ChildCache(["ml"], lambda ns, name: calls.append((ns, name))), calls


def test_a_pod_update_that_changes_nothing_a_pass_reads_wakes_no_pass() -> None:
    # Given a cached pod of ml/iris
    cache, calls = woken()
    cache.upsert(PODS, essentials("Pod", raw_pod("10", ready=False)))
    calls.clear()
    # When the pod turns Ready (its conditions change; its container statuses' kept parts do not)
    cache.upsert(PODS, essentials("Pod", raw_pod("11", ready=True)))
    # Then no pass is asked for
    assert calls == []


def test_a_pod_update_that_a_pass_reads_wakes_its_owner() -> None:
    # Given a cached pod of ml/iris
    cache, calls = woken()
    cache.upsert(PODS, essentials("Pod", raw_pod("10", ready=True)))
    calls.clear()
    # When its container starts crash-looping
    cache.upsert(PODS, essentials("Pod", raw_pod("11", ready=False, waiting="CrashLoopBackOff")))
    # Then its owner is looked at again
    assert calls == [("ml", "iris")]


def test_a_deployment_update_wakes_its_owner_only_when_a_kept_field_changed() -> None:
    # Given a cached Deployment of ml/iris with one Ready pod
    cache, calls = woken()
    cache.upsert(DEPLOYMENTS, essentials("Deployment", raw_deployment("10", ready=1, available=0)))
    calls.clear()
    # When only its availableReplicas changes, then its readyReplicas
    cache.upsert(DEPLOYMENTS, essentials("Deployment", raw_deployment("11", ready=1, available=1)))
    cache.upsert(DEPLOYMENTS, essentials("Deployment", raw_deployment("12", ready=2, available=1)))
    # Then only the second wakes a pass
    assert calls == [("ml", "iris")]


def test_the_cache_keeps_the_newest_version_even_when_no_pass_is_woken() -> None:
    # Given a cached pod, updated in a way that wakes no pass
    cache, _ = woken()
    cache.upsert(PODS, essentials("Pod", raw_pod("10", ready=False)))
    cache.upsert(PODS, essentials("Pod", raw_pod("11", ready=True)))
    # Then the cache holds the newer resourceVersion (a relist compares versions against it)
    assert cache._objects["Pod"][("ml", "iris")]["iris-1-abc"]["metadata"]["resourceVersion"] == "11"
