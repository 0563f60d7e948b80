"""Canary rollouts on the local cluster: weights as Ready pods and as HTTPRoute weights, pauses,
promote, abort, automatic and declarative rollback, and operator restarts in each phase."""

from __future__ import annotations

from typing import Any

from tests.support.k8s import (
    OperatorProcess,
    apply,
    get_json,
    kubectl,
    mdep_status,
    model_deployment,
    wait_for,
)

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"duration": "4s"}},
    {"setWeight": 50},
    {"pause": {}},
]
NEVER_READY = {"stage.modelship.dev/never-ready": "true"}
CRASH = {"stage.modelship.dev/crash": "true"}
SLOW_READY = {"stage.modelship.dev/slow-ready": "true"}


def ready_pods(ns: str, name: str = "iris") -> dict[str, int]:
    """Ready pods per version behind the ModelDeployment: the traffic split without a router."""
    pods = get_json("-n", ns, "pods", "-l", f"modelship.dev/model-deployment={name}")["items"]
    counts: dict[str, int] = {}
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = pod.get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            version = pod["metadata"]["labels"]["modelship.dev/version"]
            counts[version] = counts.get(version, 0) + 1
    return counts


def status_has(ns: str, **fields: Any) -> dict[str, Any] | None:
    status = mdep_status(ns, "iris")
    return status if all(status.get(k) == v for k, v in fields.items()) else None


def healthy(ns: str, version: str, timeout: float = 90) -> dict[str, Any]:
    return wait_for(
        f"Healthy on {version}", lambda: status_has(ns, phase="Healthy", stableVersion=version), timeout
    )


def annotate(ns: str, key: str, value: str) -> None:
    kubectl("-n", ns, "annotate", "--overwrite", "mdep", "iris", f"modelship.dev/{key}={value}")


def start_canary(ns: str, replicas: int, steps: list[dict[str, Any]], **kw: Any) -> None:
    apply(ns, model_deployment("iris", "1", replicas=replicas, steps=steps, **kw))
    healthy(ns, "1")
    apply(ns, model_deployment("iris", "2", replicas=replicas, steps=steps, **kw))


def test_a_canary_of_10_replicas_walks_its_weights_as_ready_pods_and_is_promoted(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 1 on 10 replicas and a canary of version 2 with steps 20%, 4s pause, 50%, pause
    start_canary(namespace, 10, STEPS)
    # Then at 20% two of ten Ready pods are version 2
    wait_for("2/8 split", lambda: ready_pods(namespace) == {"1": 8, "2": 2}, timeout=60)
    first = wait_for("the timed pause", lambda: status_has(namespace, phase="Paused", currentStepIndex=1))
    assert first["canaryWeight"] == 20
    # And after the 4s pause, at 50% five of ten
    wait_for("5/5 split", lambda: ready_pods(namespace) == {"1": 5, "2": 5}, timeout=60)
    waiting = wait_for(
        "waiting for promote", lambda: status_has(namespace, phase="Paused", currentStepIndex=3)
    )
    assert "promote" in waiting["message"]
    # When the user promotes
    annotate(namespace, "promote", "p1")
    # Then version 2 serves on all ten pods and version 1 is kept at zero
    status = healthy(namespace, "2")
    wait_for("10 pods of version 2", lambda: ready_pods(namespace) == {"2": 10}, timeout=60)
    assert [(r["version"], r["outcome"]) for r in status["revisions"]] == [
        ("1", "Superseded"),
        ("2", "Promoted"),
    ]
    reasons = {
        e["reason"]
        for e in get_json("-n", namespace, "events", "--field-selector", "involvedObject.name=iris")["items"]
    }
    assert {"RolloutStarted", "StepStarted", "StepsCompleted", "VersionPromoted"} <= reasons


def test_with_gateway_api_the_httproute_carries_each_weight(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given a canary routed through an HTTPRoute attached to a Gateway
    routing = {"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}}
    steps: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
    manifest = model_deployment("iris", "1", replicas=10, steps=steps)
    manifest["spec"]["rollout"]["canary"].update(routing)
    apply(namespace, manifest)
    healthy(namespace, "1")

    def weights() -> list[int]:
        route = get_json("-n", namespace, "httproute", "iris")
        return [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]]

    def backends() -> list[str]:
        route = get_json("-n", namespace, "httproute", "iris")
        return [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]]

    assert weights() == [100, 0] and backends() == ["iris-stable", "iris-canary"]
    # When version 2 rolls out
    manifest["spec"]["model"] = {"version": "2", "uri": "https://models.example.com/iris/2/model.skops"}
    apply(namespace, manifest)
    # Then the route gives it exactly 20%, with stable still at full size
    wait_for("route 80/20", lambda: weights() == [80, 20], timeout=60)
    wait_for("paused", lambda: status_has(namespace, phase="Paused", currentStepIndex=1))
    assert get_json("-n", namespace, "deployment", "iris-1")["spec"]["replicas"] == 10
    assert (
        get_json("-n", namespace, "service", "iris-canary")["spec"]["selector"]["modelship.dev/version"]
        == "2"
    )
    annotate(namespace, "promote", "a")
    wait_for("route 40/60", lambda: weights() == [40, 60], timeout=60)
    annotate(namespace, "promote", "b")
    # And once promoted the stable Service selects version 2 and takes all the traffic
    healthy(namespace, "2")
    wait_for("route back to stable", lambda: weights() == [100, 0])
    assert (
        get_json("-n", namespace, "service", "iris-stable")["spec"]["selector"]["modelship.dev/version"]
        == "2"
    )


def test_abort_sends_traffic_back_to_stable_and_retry_runs_the_canary_again(
    namespace: str, operator: OperatorProcess
) -> None:
    start_canary(namespace, 4, [{"setWeight": 50}, {"pause": {}}])
    wait_for("paused at 50%", lambda: status_has(namespace, phase="Paused", canaryWeight=50))
    # When the user aborts
    annotate(namespace, "abort", "a1")
    # Then version 1 serves all four pods and status is Degraded with the cause
    status = wait_for("Degraded", lambda: status_has(namespace, phase="Degraded"))
    assert "aborted" in status["message"]
    wait_for("all pods back on version 1", lambda: ready_pods(namespace) == {"1": 4}, timeout=60)
    assert status["revisions"][-1]["outcome"] == "Aborted"
    # When the user asks for a retry
    annotate(namespace, "retry", "r1")
    # Then the canary runs again as a new revision
    again = wait_for("paused again", lambda: status_has(namespace, phase="Paused", canaryWeight=50))
    assert [r["revision"] for r in again["revisions"]] == [1, 2, 3]


def test_a_never_ready_canary_is_rolled_back_automatically(namespace: str, operator: OperatorProcess) -> None:
    apply(namespace, model_deployment("iris", "1", replicas=4, steps=STEPS, deadline=8))
    healthy(namespace, "1")
    apply(
        namespace, model_deployment("iris", "2", replicas=4, steps=STEPS, deadline=8, pod_labels=NEVER_READY)
    )
    status = wait_for("rolled back", lambda: status_has(namespace, phase="Degraded"), timeout=60)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ProgressDeadlineExceeded"
    assert status["revisions"][-1]["outcome"] == "RolledBack"
    wait_for(
        "canary scaled to zero",
        lambda: get_json("-n", namespace, "deployment", "iris-2")["spec"]["replicas"] == 0,
    )
    assert ready_pods(namespace) == {"1": 4}


def test_a_crash_looping_canary_is_rolled_back_automatically(
    namespace: str, operator: OperatorProcess
) -> None:
    apply(namespace, model_deployment("iris", "1", replicas=4, steps=STEPS, deadline=300))
    healthy(namespace, "1")
    apply(namespace, model_deployment("iris", "2", replicas=4, steps=STEPS, deadline=300, pod_labels=CRASH))
    status = wait_for("rolled back", lambda: status_has(namespace, phase="Degraded"), timeout=60)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "CanaryCrashLooping"
    assert "crash-looping" in status["message"]
    wait_for(
        "canary scaled to zero",
        lambda: get_json("-n", namespace, "deployment", "iris-2")["spec"]["replicas"] == 0,
    )


def test_setting_the_spec_back_to_a_kept_version_rolls_back_without_walking_the_steps(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 2 promoted over version 1 (kept at zero)
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]
    start_canary(namespace, 4, steps)
    wait_for("paused", lambda: status_has(namespace, phase="Paused"))
    annotate(namespace, "promote", "p1")
    healthy(namespace, "2")
    # When git reverts the spec to version 1
    apply(namespace, model_deployment("iris", "1", replicas=4, steps=steps))
    # Then version 1 is back on all pods without stopping at the pause step
    status = healthy(namespace, "1", timeout=60)
    wait_for("all pods on version 1", lambda: ready_pods(namespace) == {"1": 4})
    assert [(r["version"], r["outcome"]) for r in status["revisions"]][-1] == ("1", "Promoted")


def test_an_operator_killed_during_a_timed_pause_does_not_restart_the_pause(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given a canary in a 20s pause
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "20s"}}, {"setWeight": 75}]
    start_canary(namespace, 4, steps)
    paused = wait_for("the timed pause", lambda: status_has(namespace, phase="Paused", currentStepIndex=1))
    started = paused["stepStartedAt"]
    # When the operator is killed during it and a new one starts and reconciles
    operator.kill()
    operator.with_metrics().start()
    operator.wait_reconciled("iris")
    # Then the pause keeps its start, the split is unchanged, and the rollout ends on time
    assert mdep_status(namespace, "iris")["stepStartedAt"] == started
    assert ready_pods(namespace) == {"1": 2, "2": 2}
    healthy(namespace, "2", timeout=60)


def test_an_operator_killed_during_weight_changes_and_a_rollback_converges(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given a canary of 10 replicas moving to 50%, whose pods take 4 s to turn Ready
    start_canary(namespace, 10, [{"setWeight": 50}, {"pause": {}}], pod_labels=SLOW_READY)
    # When status shows the step in progress (not all of its canary pods Ready yet)
    wait_for(
        "the 50% step in progress",
        lambda: (
            status_has(namespace, phase="Progressing", currentStepIndex=0)
            and ready_pods(namespace).get("2", 0) < 5
        ),
        timeout=60,
    )
    # And the operator is killed there and restarted
    operator.kill()
    operator.start()
    # Then the step completes with the exact split, once
    wait_for("5/5 split", lambda: ready_pods(namespace) == {"1": 5, "2": 5}, timeout=60)
    status = wait_for("paused at 50%", lambda: status_has(namespace, phase="Paused"))
    assert [r["revision"] for r in status["revisions"]] == [1, 2]
    # When the user aborts and the operator is killed during the rollback
    annotate(namespace, "abort", "a1")
    wait_for("rollback begun", lambda: status_has(namespace, phase="Degraded"))
    operator.kill()
    operator.start()
    # Then all traffic ends on version 1
    wait_for("all pods back on version 1", lambda: ready_pods(namespace) == {"1": 10}, timeout=60)
    assert mdep_status(namespace, "iris")["stableVersion"] == "1"


def test_a_change_back_to_a_kept_version_deleted_by_hand_is_a_canary_that_never_flips(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 2 promoted over version 1, and version 1's kept Deployment deleted by hand
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]
    start_canary(namespace, 4, steps)
    wait_for("paused", lambda: status_has(namespace, phase="Paused"))
    annotate(namespace, "promote", "p1")
    healthy(namespace, "2")
    kubectl("-n", namespace, "delete", "deployment", "iris-1", "--wait=true")
    # When the spec goes back to version 1
    apply(namespace, model_deployment("iris", "1", replicas=4, steps=steps))
    # Then the operator starts a canary, and records why: version 1 served before, but its
    # Deployment was gone
    status = wait_for("the rollout of 1 recorded", lambda: status_has(namespace, canaryVersion="1"))
    facts = status["rollout"]
    assert (facts["kind"], facts["keptDeploymentFound"]) == ("Canary", False)
    # And once version 1's pods run again it walks to the pause and waits there for a promote,
    # still a canary, rather than deciding it is a rollback and promoting
    waiting = wait_for(
        "waiting for a promote at step 2",
        lambda: status_has(namespace, phase="Paused", currentStepIndex=1, stableVersion="2"),
    )
    assert waiting["rollout"]["kind"] == "Canary" and waiting["rollout"]["waitingForPromote"] is True
    wait_for("1 canary pod beside 3 stable", lambda: ready_pods(namespace) == {"1": 1, "2": 3})
