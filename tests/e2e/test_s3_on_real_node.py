"""Models from S3 on the real node: a real S3 server (Versity Gateway, built by hack/s3.sh) on the host's
side of the node's bridge, a bucket the pods read as a user holding read-only rights, credentials from a
Secret the ModelDeployment names, and the built image downloading, verifying and serving the model; a
missing key and a user without rights on the bucket seen as the user sees them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hack.traffic import v2_body
from tests.e2e.support import cluster_ip, on_real_node, sha256_hex, wait_answering
from tests.serving.s3_server import (
    OTHER_ACCESS,
    OTHER_SECRET,
    READER_ACCESS,
    READER_SECRET,
    S3Server,
    running_versitygw,
)
from tests.support.k8s import OperatorProcess, apply, get_json, kubectl, mdep_status, wait_for

# The node's own address on its bridge (hack/node.sh): pods reach it, nothing outside does.
NODE_IP = "10.244.0.1"
PORT = 17443
NAME = "iris"


@pytest.fixture(scope="module")
def s3_store(real_node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server on the node's bridge address."""
    with running_versitygw(tmp_path_factory.mktemp("s3-node"), NODE_IP, PORT) as server:
        yield server


def manifest(
    version: str, key: str, endpoint: str, sha256: str | None = None, secret: str = "model-store"
) -> dict[str, Any]:
    model: dict[str, Any] = {
        "version": version,
        "uri": f"s3://models/{key}",
        "s3": {
            "endpoint": endpoint,
            "region": "us-east-1",
            "forcePathStyle": True,
            "credentialsSecret": {"name": secret},
        },
    }
    if sha256:
        model["sha256"] = sha256
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": model,
            "replicas": 1,
            "rollout": {"progressDeadlineSeconds": 90},
            "serving": on_real_node(),
        },
    }


def create_secret(ns: str, name: str, access: str, secret: str) -> None:
    kubectl(
        *("-n", ns, "create", "secret", "generic", name),
        f"--from-literal=AWS_ACCESS_KEY_ID={access}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={secret}",
    )


def test_a_model_from_s3_serves_and_a_missing_key_and_a_denied_user_are_rolled_back(
    namespace: str, operator: OperatorProcess, s3_store: S3Server, iris_model: bytes
) -> None:
    # One story on one ModelDeployment: each failure case costs a pod that crash-loops and a rollback on
    # the real node, far cheaper after a first Healthy version than in a ModelDeployment of its own.
    endpoint = s3_store.endpoint
    # Given a bucket holding the model (Versity's POSIX backend: a bucket is a directory), a Secret with
    # the credentials of a user who may only read it, and one of a user with no rights on it
    (s3_store.bucket("models") / "iris" / "v1").mkdir(parents=True)
    (s3_store.bucket("models") / "iris" / "v1" / "model.skops").write_bytes(iris_model)
    create_secret(namespace, "model-store", READER_ACCESS, READER_SECRET)
    create_secret(namespace, "no-rights", OTHER_ACCESS, OTHER_SECRET)
    # When a ModelDeployment loads s3://models/iris/v1/model.skops with its digest
    apply(namespace, manifest("v1", "iris/v1/model.skops", endpoint, sha256_hex(iris_model)))
    # Then the pod downloads and verifies it, and answers real requests
    wait_for("v1 Healthy", lambda: mdep_status(namespace, NAME).get("phase") == "Healthy", timeout=180)
    ip = cluster_ip(namespace, NAME)
    wait_answering(ip, NAME)
    answer = requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(), timeout=10)
    assert answer.json()["model_version"] == "v1", answer.text

    # When v2 names a key the bucket does not have
    apply(namespace, manifest("v2", "iris/v2/model.skops", endpoint))
    # Then its pod's log says why, in one line
    wait_for("the pod's one-line reason", lambda: MISSING in version_logs(namespace, "v2"), timeout=120)
    # And it is rolled back while v1 keeps serving
    wait_for(
        "v2 rolled back",
        lambda: (
            (s := mdep_status(namespace, NAME)).get("phase") == "Degraded" and s.get("stableVersion") == "v1"
        ),
        timeout=180,
    )
    assert "v2" in mdep_status(namespace, NAME)["message"]
    assert requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(), timeout=10).ok

    # When v3 loads v1's model with the credentials of the user who has no rights on the bucket
    apply(namespace, manifest("v3", "iris/v1/model.skops", endpoint, secret="no-rights"))
    # Then its pod's log says access was denied, in one line
    wait_for("the pod's one-line reason", lambda: DENIED in version_logs(namespace, "v3"), timeout=120)
    # And it is rolled back while v1 keeps serving, the status naming v3
    wait_for(
        "v3 rolled back",
        lambda: (
            (s := mdep_status(namespace, NAME)).get("phase") == "Degraded"
            and s.get("stableVersion") == "v1"
            and "v3" in s.get("message", "")
        ),
        timeout=180,
    )
    assert requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(), timeout=10).ok


MISSING = "key 'iris/v2/model.skops' does not exist in bucket 'models'"
DENIED = "cannot download s3://models/iris/v1/model.skops: access denied"


def version_logs(ns: str, version: str) -> str:
    """What a version's server wrote before it exited (this run's or the last one's)."""
    out = ""
    for pod in get_json("-n", ns, "pods", "-l", f"modelship.dev/version={version}")["items"]:
        for flag in ("--previous", "--timestamps=false"):
            out += kubectl("-n", ns, "logs", pod["metadata"]["name"], flag, check=False)
    return out
