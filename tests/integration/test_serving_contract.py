"""The operator's serving pods and the model server agree: the exact container the operator builds
(its environment, port and probe paths) runs `modelship-server` and answers a real client."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import requests
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.serving.support import free_port
from tests.support.k8s import ENV, OperatorProcess, apply, get_json, mdep_status, model_deployment, wait_for


def test_the_container_the_operator_builds_serves_the_model_it_names(
    namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    # Given an iris model on disk and a ModelDeployment pointing at it
    x, y = load_iris(return_X_y=True)
    model_file = tmp_path / "model.skops"
    skops.io.dump(LogisticRegression(max_iter=500).fit(x, y), model_file)
    port = free_port()
    manifest = model_deployment("iris", "7", replicas=1)
    manifest["spec"]["model"]["uri"] = f"file://{model_file}"
    manifest["spec"]["serving"] = {"port": port}
    apply(namespace, manifest)
    wait_for("Healthy", lambda: mdep_status(namespace, "iris").get("phase") == "Healthy")
    # When the operator's container spec is run as a process (kwok runs no containers)
    container: dict[str, Any] = get_json("-n", namespace, "deployment", "iris-7")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {**ENV, **{e["name"]: e["value"] for e in container["env"]}, "MODELSHIP_HOST": "127.0.0.1"}
    server = subprocess.Popen(["modelship-server"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{container['ports'][0]['containerPort']}"
        ready_path = container["readinessProbe"]["httpGet"]["path"]
        live_path = container["livenessProbe"]["httpGet"]["path"]
        wait_for("server ready", lambda: _ok(base + ready_path), timeout=60)
        # Then its probes answer, and a V2 infer names the model and version the operator set
        assert _ok(base + live_path)
        body = {
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
        }
        answer = requests.post(f"{base}/v2/models/iris/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_name"] == "iris"
        assert answer.json()["model_version"] == "7"
        assert answer.headers["modelship-model-version"] == "7"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
