"""Models from S3 on the real node: a real S3 server (Versity Gateway, built by hack/s3.sh) on the host's
side of the node's bridge, credentials from a Secret the ModelDeployment names, and the built image
downloading, verifying and serving the model; a missing key seen as the user sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hack.traffic import v2_body
from tests.e2e.support import cluster_ip, on_real_node, sha256_hex, wait_answering
from tests.serving.s3_server import ROOT_ACCESS, ROOT_SECRET, running_versitygw
from tests.support.k8s import OperatorProcess, apply, get_json, kubectl, mdep_status, wait_for

# The node's own address on its bridge (hack/node.sh): pods reach it, nothing outside does.
NODE_IP = "10.244.0.1"
PORT = 17443
NAME = "iris"


@pytest.fixture(scope="module")
def s3_endpoint(real_node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The endpoint and the data directory (a bucket is a directory there) of a real S3 server on the
    node's bridge address."""
    root = tmp_path_factory.mktemp("s3-node")
    with running_versitygw(root, NODE_IP, PORT) as (_, endpoint):
        yield endpoint, root / "data"


def manifest(version: str, key: str, endpoint: str, sha256: str | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "version": version,
        "uri": f"s3://models/{key}",
        "s3": {
            "endpoint": endpoint,
            "region": "us-east-1",
            "forcePathStyle": True,
            "credentialsSecret": {"name": "model-store"},
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


def test_a_model_from_s3_with_credentials_from_a_secret_serves_and_a_missing_key_is_rolled_back(
    namespace: str, operator: OperatorProcess, s3_endpoint: tuple[str, Path], iris_model: bytes
) -> None:
    endpoint, data = s3_endpoint
    # Given a bucket holding the model (Versity's POSIX backend: a bucket is a directory) and a Secret
    # with the store's credentials
    (data / "models" / "iris" / "v1").mkdir(parents=True)
    (data / "models" / "iris" / "v1" / "model.skops").write_bytes(iris_model)
    kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "model-store",
        f"--from-literal=AWS_ACCESS_KEY_ID={ROOT_ACCESS}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={ROOT_SECRET}",
    )
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
    wait_for("the pod's one-line reason", lambda: MISSING in v2_logs(namespace), timeout=120)
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


MISSING = "key 'iris/v2/model.skops' does not exist in bucket 'models'"


def v2_logs(ns: str) -> str:
    """What v2's server wrote before it exited (this run's or the last one's)."""
    out = ""
    for pod in get_json("-n", ns, "pods", "-l", "modelship.dev/version=v2")["items"]:
        for flag in ("--previous", "--timestamps=false"):
            out += kubectl("-n", ns, "logs", pod["metadata"]["name"], flag, check=False)
    return out
