"""The built serving image on the real node: models from an in-cluster host and from a claim, real
probes, real answers, the restricted Pod Security Standard, and a version that really crash-loops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from hack.traffic import v2_body
from tests.e2e.support import (
    REAL_NODE,
    cluster_ip,
    model_host,
    on_real_node,
    ready_pods,
    restricted_namespace,
    sha256_hex,
    wait_answering,
    wait_ready_on_real_node,
)
from tests.support.k8s import OperatorProcess, apply, get_json, kubectl, kubectl_result, mdep_status, wait_for

NAME = "iris"
SELECTOR = f"modelship.dev/model-deployment={NAME}"


def manifest(uri: str, version: str, sha256: str | None = None, replicas: int = 2) -> dict[str, Any]:
    model: dict[str, Any] = {"version": version, "uri": uri}
    if sha256:
        model["sha256"] = sha256
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": model,
            "replicas": replicas,
            "rollout": {"progressDeadlineSeconds": 90},
            "serving": on_real_node(),
        },
    }


def healthy(ns: str, version: str) -> None:
    wait_for(
        f"{version} Healthy",
        lambda: (s := mdep_status(ns, NAME)).get("phase") == "Healthy" and s.get("stableVersion") == version,
        timeout=180,
    )


def assert_serves(ns: str, version: str) -> None:
    """V2 and V1 answers through the Service's ClusterIP, naming the version."""
    ip = cluster_ip(ns, NAME)
    wait_answering(ip, NAME)
    v2 = requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(3), timeout=10)
    assert v2.status_code == 200, v2.text
    doc = v2.json()
    assert (doc["model_name"], doc["model_version"]) == (NAME, version)
    assert doc["outputs"][0]["data"] == [0, 0, 0]  # three setosa rows
    v1 = requests.post(
        f"http://{ip}/v1/models/{NAME}:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10
    )
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == [0]


def test_a_model_from_an_in_cluster_http_host_serves_real_requests_under_the_restricted_standard(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    # Given a namespace that enforces the restricted Pod Security Standard, and a model host in it
    restricted_namespace(namespace)
    base = model_host(namespace, {"iris.skops": iris_model})
    # When a ModelDeployment loads the model by its cluster DNS name, with its digest
    apply(namespace, manifest(f"{base}/iris.skops", "v1", sha256_hex(iris_model)))
    # Then its pods pass their real probes on the real node and the rollout is Healthy
    healthy(namespace, "v1")
    wait_ready_on_real_node(namespace, SELECTOR, 2)
    # And clients get real predictions over V2 and V1, naming the version
    assert_serves(namespace, "v1")
    # And the container cannot write its root filesystem (only /tmp)
    pod = ready_pods(namespace, SELECTOR)[0]["metadata"]["name"]
    write = kubectl_result("-n", namespace, "exec", pod, "--", "python", "-c", "open('/probe', 'w')")
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr


def test_a_model_from_a_persistent_volume_claim_serves_real_requests(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    # Given a claim bound to a volume on the real node that holds the model file
    host_dir = Path("/var/lib/modelship/e2e-volumes") / namespace
    (host_dir / "models").mkdir(parents=True)
    (host_dir / "models" / "iris.skops").write_bytes(iris_model)
    pv: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"models-{namespace}"},
        "spec": {
            "capacity": {"storage": "10Mi"},
            "accessModes": ["ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": "models"},
            "hostPath": {"path": str(host_dir), "type": "Directory"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [REAL_NODE]}
                            ]
                        }
                    ]
                }
            },
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models"},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": pv["metadata"]["name"],
            "resources": {"requests": {"storage": "10Mi"}},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(pv))
    try:
        apply(namespace, pvc)
        wait_for(
            "the claim bound",
            lambda: get_json("-n", namespace, "pvc", "models")["status"].get("phase") == "Bound",
        )
        # When a ModelDeployment loads pvc://models/models/iris.skops
        apply(namespace, manifest("pvc://models/models/iris.skops", "v1", sha256_hex(iris_model)))
        # Then it is Healthy on the real node and answers V2 and V1
        healthy(namespace, "v1")
        wait_ready_on_real_node(namespace, SELECTOR, 2)
        assert_serves(namespace, "v1")
    finally:
        kubectl("delete", "pv", pv["metadata"]["name"], "--wait=false", check=False)


def test_a_version_that_cannot_load_its_model_really_crash_loops_and_is_rolled_back(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    # Given v1 Healthy, served from the in-cluster host
    base = model_host(namespace, {"iris.skops": iris_model, "broken.skops": b"not a model"})
    apply(namespace, manifest(f"{base}/iris.skops", "v1", sha256_hex(iris_model)))
    healthy(namespace, "v1")
    # When v2 points at a file that is no model at all
    apply(namespace, manifest(f"{base}/broken.skops", "v2"))

    # Then v2's containers really exit and are restarted by the kubelet
    def restarted() -> bool:
        pods = get_json("-n", namespace, "pods", "-l", f"{SELECTOR},modelship.dev/version=v2")["items"]
        return any(
            cs.get("restartCount", 0) >= 1 for p in pods for cs in p["status"].get("containerStatuses", [])
        )

    wait_for("v2's container restarted by the kubelet", restarted, timeout=120)
    # And the operator rolls back to v1, which keeps answering
    wait_for(
        "v2 rolled back",
        lambda: (
            (s := mdep_status(namespace, NAME)).get("phase") == "Degraded" and s.get("stableVersion") == "v1"
        ),
        timeout=180,
    )
    assert mdep_status(namespace, NAME).get("failedVersion") == "v2"
    assert_serves(namespace, "v1")
