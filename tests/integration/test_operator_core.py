"""The operator's core against the local cluster: create, switch, failure, delete, restart, at rest."""

from __future__ import annotations

from typing import Any, cast

import pytest
import yaml

from tests.support.k8s import (
    OperatorProcess,
    apply,
    get_json,
    kubectl,
    kubectl_result,
    mdep_status,
    model_deployment,
    wait_for,
)

NEVER_READY = {"stage.modelship.dev/never-ready": "true"}
SLOW_READY = {"stage.modelship.dev/slow-ready": "true"}


def deployment(ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = get_json("-n", ns, "deployment", name)
    return result


def settled(dep: dict[str, Any], replicas: int) -> bool:
    """The Deployment controller has caught up with the spec and every pod is Ready."""
    status = dep.get("status") or {}
    caught_up = status.get("observedGeneration", 0) >= dep["metadata"]["generation"]
    counts = [status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas")]
    return caught_up and counts == [replicas] * 3


def phase_is(ns: str, name: str, phase: str, **fields: Any) -> bool:
    status = mdep_status(ns, name)
    return status.get("phase") == phase and all(status.get(k) == v for k, v in fields.items())


def healthy(ns: str, name: str, version: str, timeout: float = 60) -> dict[str, Any]:
    wait_for(
        f"{name} Healthy on version {version}",
        lambda: phase_is(ns, name, "Healthy", stableVersion=version),
        timeout,
    )
    return mdep_status(ns, name)


def test_a_model_deployment_gets_a_deployment_a_service_and_a_ready_status(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given a ModelDeployment of version 1 with 3 replicas
    apply(namespace, model_deployment("iris", "1", replicas=3))
    # When the operator has reconciled it
    status = healthy(namespace, "iris", "1")
    # Then Deployment iris-1 runs 3 Ready pods, behind Service iris selecting version 1
    dep = deployment(namespace, "iris-1")
    assert dep["status"]["readyReplicas"] == 3
    svc = get_json("-n", namespace, "service", "iris")
    assert svc["spec"]["selector"] == {"modelship.dev/model-deployment": "iris", "modelship.dev/version": "1"}
    # And status follows the API conventions
    generation = get_json("-n", namespace, "mdep", "iris")["metadata"]["generation"]
    assert status["observedGeneration"] == generation
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["observedGeneration"]) == ("True", generation)
    # And the rollout was announced as Kubernetes Events on the ModelDeployment
    events = get_json("-n", namespace, "events", "--field-selector", "involvedObject.name=iris")["items"]
    assert {"RolloutStarted", "VersionPromoted"} <= {e["reason"] for e in events}


def test_pod_labels_and_annotations_reach_the_serving_pods(namespace: str, operator: OperatorProcess) -> None:
    manifest = model_deployment("iris", "1", replicas=1)
    manifest["spec"]["serving"] = {"podLabels": {"team": "ml"}, "podAnnotations": {"example.com/owner": "ml"}}
    apply(namespace, manifest)
    healthy(namespace, "iris", "1")
    (pod,) = get_json("-n", namespace, "pods", "-l", "modelship.dev/model-deployment=iris")["items"]
    assert pod["metadata"]["labels"]["team"] == "ml"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "ml"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_version_switch_moves_the_service_only_when_the_new_version_is_ready(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 1 Healthy
    apply(namespace, model_deployment("iris", "1", replicas=3))
    healthy(namespace, "iris", "1")
    # When the spec moves to version 2
    apply(namespace, model_deployment("iris", "2", replicas=3))
    # Then version 2 becomes stable, the Service selects it, and version 1 is kept at zero
    status = healthy(namespace, "iris", "2")
    svc = get_json("-n", namespace, "service", "iris")
    assert svc["spec"]["selector"]["modelship.dev/version"] == "2"
    assert deployment(namespace, "iris-1")["spec"]["replicas"] == 0
    assert deployment(namespace, "iris-2")["status"]["readyReplicas"] == 3
    assert [(r["version"], r["outcome"]) for r in status["revisions"]] == [
        ("1", "Superseded"),
        ("2", "Promoted"),
    ]


def test_a_never_ready_version_is_rolled_back_and_the_old_one_keeps_serving(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 1 Healthy
    apply(namespace, model_deployment("iris", "1", replicas=2, deadline=8))
    healthy(namespace, "iris", "1")
    # When version 2's pods never become Ready
    apply(namespace, model_deployment("iris", "2", replicas=2, deadline=8, pod_labels=NEVER_READY))
    # Then after the deadline status is Degraded, with a reason and a message naming the version
    wait_for("Degraded", lambda: phase_is(namespace, "iris", "Degraded"), timeout=40)
    status = mdep_status(namespace, "iris")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ProgressDeadlineExceeded"
    assert "version 2" in status["message"] and "keeps serving" in status["message"]
    # And version 1 still serves all traffic, version 2 is scaled to zero
    assert get_json("-n", namespace, "service", "iris")["spec"]["selector"]["modelship.dev/version"] == "1"
    assert deployment(namespace, "iris-1")["status"]["readyReplicas"] == 2
    wait_for("iris-2 at zero", lambda: deployment(namespace, "iris-2")["spec"]["replicas"] == 0)
    assert status["stableVersion"] == "1"


def test_deleting_a_model_deployment_removes_its_children(namespace: str, operator: OperatorProcess) -> None:
    apply(namespace, model_deployment("iris", "1", replicas=2))
    healthy(namespace, "iris", "1")
    kubectl("-n", namespace, "delete", "mdep", "iris", "--wait=true", "--timeout=30s")
    # The garbage collector follows the owner references.
    wait_for(
        "children garbage-collected",
        lambda: (
            not get_json(
                "-n", namespace, "deployments,services", "-l", "modelship.dev/model-deployment=iris"
            )["items"]
        ),
        timeout=60,
    )


def test_an_operator_killed_mid_switch_converges_after_a_restart(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 1 Healthy and a switch to version 2 under way, whose pods take 4 s to turn Ready
    apply(namespace, model_deployment("iris", "1", replicas=4, pod_labels=SLOW_READY))
    healthy(namespace, "iris", "1")
    apply(namespace, model_deployment("iris", "2", replicas=4, pod_labels=SLOW_READY))
    wait_for(
        "version 2 rolling out, not yet Ready",
        lambda: (
            (s := mdep_status(namespace, "iris")).get("canaryVersion") == "2"
            and s.get("phase") == "Progressing"
            and s.get("stableVersion") == "1"
        ),
        timeout=30,
    )
    # When the operator is killed outright, then started again
    operator.kill()
    operator.start()
    # Then the switch completes, once, with one revision per version
    status = healthy(namespace, "iris", "2")
    assert [r["version"] for r in status["revisions"]] == ["1", "2"]
    assert deployment(namespace, "iris-1")["spec"]["replicas"] == 0


def test_at_rest_the_operator_writes_nothing(namespace: str, operator: OperatorProcess) -> None:
    # Given a Healthy ModelDeployment whose Deployment has caught up with both its pods Ready
    apply(namespace, model_deployment("iris", "1", replicas=2))
    healthy(namespace, "iris", "1")
    wait_for("iris-1 settled with 2 Ready pods", lambda: settled(deployment(namespace, "iris-1"), 2))

    def versions() -> dict[str, str]:
        objs = get_json("-n", namespace, "mdep,deployments,services")["items"]
        return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in objs}

    before = versions()
    # When the operator is restarted (a full resync of every object) and has reconciled it
    operator.stop()
    operator.with_metrics().start()
    operator.wait_reconciled("iris")
    # Then no object changed: no status churn, no re-applied children
    assert versions() == before


INVALID = [
    ({"model": {"version": "V2!", "uri": "https://m/x"}}, "spec.model.version"),
    ({"model": {"version": "2", "uri": "ftp://m/x"}}, "spec.model.uri"),
    ({"model": {"version": "2", "uri": "https://m/x", "format": "pickle"}}, "spec.model.format"),
    ({"model": {"version": "2", "uri": "https://m/x", "sha256": "xyz"}}, "spec.model.sha256"),
    ({"model": {"version": "2", "uri": "https://m/x"}, "replicas": -1}, "spec.replicas"),
    (
        {
            "model": {"version": "2", "uri": "https://m/x"},
            "rollout": {"canary": {"steps": [{"setWeight": 101}]}},
        },
        "spec.rollout.canary.steps[0].setWeight",
    ),
    (
        {
            "model": {"version": "2", "uri": "https://m/x"},
            "rollout": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 20}]}},
        },
        "setWeight values must not decrease",
    ),
    (
        {"model": {"version": "2", "uri": "https://m/x"}, "rollout": {"canary": {"steps": [{}]}}},
        "must set exactly one of setWeight, pause or analysis",
    ),
    (
        {
            "model": {"version": "2", "uri": "https://m/x"},
            "rollout": {"canary": {"steps": [{"pause": {"duration": "soon"}}]}},
        },
        "spec.rollout.canary.steps[0].pause.duration",
    ),
    ({"model": {"version": "a" * 40, "uri": "https://m/x"}}, "spec.model.version"),
    (
        {
            "model": {"version": "2", "uri": "https://m/x"},
            "serving": {"resources": {"requests": {"cpu": "lots"}}},
        },
        "spec.serving.resources.requests.cpu",
    ),
    (
        {"model": {"version": "2", "uri": "https://m/x"}, "serving": {"env": [{"value": "x"}]}},
        "spec.serving.env[0].name",
    ),
]


@pytest.mark.parametrize(("spec", "named"), INVALID, ids=[n for _, n in INVALID])
def test_an_invalid_manifest_is_refused_with_a_message_naming_the_field(
    namespace: str, spec: dict[str, Any], named: str
) -> None:
    manifest = {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "a-rather-long-model-deployment-name"},
        "spec": spec,
    }
    result = kubectl_result("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    # And nothing was stored
    assert not get_json("-n", namespace, "mdep")["items"]


def test_a_spec_the_apiserver_refuses_for_a_child_is_reported_and_others_keep_working(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given a ModelDeployment with an env var source the CRD schema cannot check, but a Deployment refuses
    bad = model_deployment("bad", "1", replicas=1)
    bad["spec"]["serving"] = {
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]
    }
    apply(namespace, bad, model_deployment("good", "1", replicas=1))
    # Then its status is Degraded with the apiserver's reason, naming the field
    # (the probe is False until it returns the status, and wait_for returns only a truthy value)
    status = cast(
        dict[str, Any],
        wait_for(
            "bad Degraded", lambda: phase_is(namespace, "bad", "Degraded") and mdep_status(namespace, "bad")
        ),
    )
    assert "refused" in status["message"] and "fieldPath" in status["message"]
    # And the operator keeps reconciling the others
    healthy(namespace, "good", "1")
    # When the user fixes the spec
    bad["spec"]["serving"] = {
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    }
    apply(namespace, bad)
    # Then it recovers
    healthy(namespace, "bad", "1")
