"""Models from S3 on the real node, as examples/s3.yaml shows them: a real S3 server (Versity Gateway,
built by hack/s3.sh) on the host's side of the node's bridge, a bucket the pods read as a user holding
read-only rights, credentials from a Secret the ModelDeployment names, and the built image downloading,
verifying and serving the model; a missing key and a user without rights on the bucket seen as the user
sees them (the pods' one-line log and the rollback in status)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml

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
from tests.support.k8s import REPO, OperatorProcess, apply, get_json, kubectl, mdep_status, wait_for

# The node's own address on its bridge (hack/node.sh): pods reach it, nothing outside does.
NODE_IP = "10.244.0.1"
PORT = 17443
EXAMPLE = REPO / "examples" / "s3.yaml"
NAME = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]


@pytest.fixture(scope="module")
def s3_store(real_node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server on the node's bridge address."""
    with running_versitygw(tmp_path_factory.mktemp("s3-node"), NODE_IP, PORT) as server:
        yield server


def manifest(endpoint: str, version: str = "1", **model: Any) -> dict[str, Any]:
    """examples/s3.yaml as it runs on the local cluster: its endpoint is the S3 server on the node's
    bridge and its pods run on the real node; `version` and `model` fields vary from step to step."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["model"]["s3"]["endpoint"] = endpoint
    doc["spec"]["model"].update(version=version, **model)
    doc["spec"]["serving"] = on_real_node()
    doc["spec"]["rollout"] = {"progressDeadlineSeconds": 90}
    return doc


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
    (s3_store.bucket("models") / "iris" / "1").mkdir(parents=True)
    (s3_store.bucket("models") / "iris" / "1" / "model.skops").write_bytes(iris_model)
    create_secret(namespace, "model-store", READER_ACCESS, READER_SECRET)
    create_secret(namespace, "no-rights", OTHER_ACCESS, OTHER_SECRET)
    # When examples/s3.yaml is applied (s3://models/iris/1/model.skops), with the model's digest
    apply(namespace, manifest(endpoint, sha256=sha256_hex(iris_model)))
    # Then the pods download and verify it, and answer real requests
    wait_for("1 Healthy", lambda: mdep_status(namespace, NAME).get("phase") == "Healthy", timeout=180)
    ip = cluster_ip(namespace, NAME)
    wait_answering(ip, NAME)
    answer = requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(), timeout=10)
    assert answer.json()["model_version"] == "1", answer.text

    # When version 2 names a key the bucket does not have
    apply(namespace, manifest(endpoint, "2", uri="s3://models/iris/2/model.skops"))
    # Then its pods' log says why, in one line
    wait_for("the pod's one-line reason", lambda: MISSING in version_logs(namespace, "2"), timeout=120)
    # And it is rolled back while 1 keeps serving, the status naming the version and the pod's reason
    wait_for("2 rolled back", lambda: rolled_back(namespace, "2"), timeout=180)
    assert MISSING in mdep_status(namespace, NAME)["message"]
    assert requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(), timeout=10).ok

    # When version 3 loads 1's model with the credentials of the user who has no rights on the bucket
    no_rights = {
        "s3": {**manifest(endpoint)["spec"]["model"]["s3"], "credentialsSecret": {"name": "no-rights"}}
    }
    apply(namespace, manifest(endpoint, "3", **no_rights))
    # Then its pods' log says access was denied, in one line
    wait_for("the pod's one-line reason", lambda: DENIED in version_logs(namespace, "3"), timeout=120)
    # And it is rolled back while 1 keeps serving, the status naming the version and the pod's reason
    wait_for("3 rolled back", lambda: rolled_back(namespace, "3"), timeout=180)
    assert DENIED in mdep_status(namespace, NAME)["message"]
    assert requests.post(f"http://{ip}/v2/models/{NAME}/infer", json=v2_body(), timeout=10).ok


MISSING = "key 'iris/2/model.skops' does not exist in bucket 'models'"
DENIED = "cannot download s3://models/iris/1/model.skops: access denied"


def rolled_back(ns: str, version: str) -> bool:
    status = mdep_status(ns, NAME)
    return (
        status.get("phase") == "Degraded"
        and status.get("stableVersion") == "1"
        and f"version {version} rolled back" in status.get("message", "")
    )


def version_logs(ns: str, version: str) -> str:
    """What a version's server wrote before it exited (this run's or the last one's)."""
    out = ""
    for pod in get_json("-n", ns, "pods", "-l", f"modelship.dev/version={version}")["items"]:
        for flag in ("--previous", "--timestamps=false"):
            out += kubectl("-n", ns, "logs", pod["metadata"]["name"], flag, check=False)
    return out
