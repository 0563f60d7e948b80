"""Boiling the cluster's children down to what decisions need."""

from __future__ import annotations

from typing import Any

from modelship.observation import observe_children


def deployment(
    version: str, replicas: int, ready: int, generation: int = 1, observed: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"iris-{version}",
            "generation": generation,
            "labels": {"modelship.dev/version": version},
            "annotations": {"modelship.dev/spec-hash": "h"},
        },
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready, "updatedReplicas": replicas, "observedGeneration": observed},
    }


def pod(version: str, restarts: int = 0, waiting: str | None = None) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": "p", "labels": {"modelship.dev/version": version}},
        "status": {"containerStatuses": [{"restartCount": restarts, "state": state}]},
    }


def test_a_deployment_the_controller_has_not_caught_up_with_is_not_fully_ready() -> None:
    seen = observe_children([deployment("1", 3, 3, generation=2, observed=1)])
    assert not seen.versions["1"].fully_ready(3)


def test_a_settled_deployment_with_all_pods_ready_is_fully_ready() -> None:
    seen = observe_children([deployment("1", 3, 3)])
    assert seen.versions["1"].fully_ready(3)
    assert seen.versions["1"].spec_hash == "h"


def test_crash_looping_pods_are_counted_per_version() -> None:
    pods = [pod("2", waiting="CrashLoopBackOff"), pod("2", restarts=5), pod("2"), pod("1", restarts=1)]
    seen = observe_children([deployment("1", 1, 1), deployment("2", 3, 0)], pods)
    assert seen.versions["2"].crash_looping == 2
    assert seen.versions["1"].crash_looping == 0


def test_a_crash_looping_pods_last_log_line_is_its_versions_crash_reason() -> None:
    # Given a crash-looping pod whose last exit left the tail of its log as the termination message
    crashed = pod("2", waiting="CrashLoopBackOff")
    crashed["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"exitCode": 1, "message": "loading model\ncannot download s3://m/k: access denied\n\n"}
    }

    # When the children are observed
    seen = observe_children([deployment("2", 1, 0)], [crashed])

    # Then the version's crash reason is the last non-empty line
    assert seen.versions["2"].crash_reason == "cannot download s3://m/k: access denied"


def test_a_crash_reason_is_bounded() -> None:
    crashed = pod("2", restarts=4)
    crashed["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"message": "x" * 5000}}
    seen = observe_children([deployment("2", 1, 0)], [crashed])
    reason = seen.versions["2"].crash_reason
    assert reason is not None and len(reason) == 300 and reason.endswith("...")


def test_a_pod_that_crashed_once_gives_no_reason() -> None:
    crashed = pod("2", restarts=1)
    crashed["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"message": "boom"}}
    assert observe_children([deployment("2", 1, 0)], [crashed]).versions["2"].crash_reason is None
