"""Test support for canary analysis on the real node: models that are good, wrong or slow for the
same clients, a ModelDeployment whose canary is gated by checks, and what its status says.

The clients are hack/traffic.py's, sending iris rows of 4 features; every request is on a new
connection, so kube-proxy picks a pod for each and the canary gets its share from its first Ready
moment (the analysis measures from then on).
"""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

import numpy as np
import skops.io
import yaml
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from tests.e2e.support import ONE_WORKER, on_real_node, sha256_hex
from tests.support.k8s import REPO, apply, kubectl, mdep_status

NAME = "iris"
# The scikit-learn path for every version: the compiled (ONNX) path would make a forest as fast as a
# linear model, and the latency test needs the forest slow (serving_image/README.md, --compile).
COMPILE_OFF = {"name": "MODELSHIP_COMPILE", "value": "off"}
# A short analysis keeps the tests fast: a gated rollout takes at least interval x count.
INTERVAL = "5s"
INTERVAL_SECONDS = 5.0


def _dump(model: Any) -> bytes:
    buf = io.BytesIO()
    # Compressed: the model host serves files from a ConfigMap, which holds at most 1 MiB.
    skops.io.dump(model, buf, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buf.getvalue()


def linear_model() -> bytes:
    """The good model: what clients expect (4 features), answered in about a millisecond."""
    x, y = load_iris(return_X_y=True)
    return _dump(LogisticRegression(max_iter=1000).fit(x, y))


def five_feature_model() -> bytes:
    """A model trained with a fifth feature the clients do not send: every real request is a 400."""
    x, y = load_iris(return_X_y=True)
    return _dump(LogisticRegression(max_iter=1000).fit(np.column_stack([x, x[:, 0] * x[:, 1]]), y))


def slow_forest_model() -> bytes:
    """Right answers, slowly: 200 fully grown trees predicted by scikit-learn, over 10 ms a request
    where the linear model takes well under one."""
    x, y = load_iris(return_X_y=True)
    return _dump(RandomForestClassifier(n_estimators=200, random_state=0).fit(x, y))


def model_host(namespace: str, files: dict[str, bytes]) -> str:
    """tests.e2e.support.model_host, with the ConfigMap applied server-side: a client-side apply copies the
    whole object into an annotation of at most 256 KiB, which the forest alone outgrows."""
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "models"},
        "binaryData": {name: base64.b64encode(data).decode() for name, data in files.items()},
    }
    kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(cm))
    apply(namespace, *yaml.safe_load_all((REPO / "examples/real-node/model-host.yaml").read_text()))
    kubectl("-n", namespace, "rollout", "status", "deployment/model-host", "--timeout=120s", timeout=130)
    return f"http://models.{namespace}.svc.cluster.local"


def manifest(
    base_url: str, version: str, file: str, model: bytes, steps: list[dict[str, Any]], replicas: int = 2
) -> dict[str, Any]:
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"version": version, "uri": f"{base_url}/{file}", "sha256": sha256_hex(model)},
            "replicas": replicas,
            "rollout": {"progressDeadlineSeconds": 120, "canary": {"steps": steps}},
            "serving": on_real_node(env=[*ONE_WORKER, COMPILE_OFF]),
        },
    }


def gated_steps(*checks: dict[str, Any], count: int = 3, **limits: Any) -> list[dict[str, Any]]:
    """Half the pods on the canary, a short pause while its first requests are scraped, then an
    analysis of `checks` every 5 s until each passed `count` times."""
    analysis = {"interval": INTERVAL, "count": count, "checks": list(checks), **limits}
    return [{"setWeight": 50}, {"pause": {"duration": "5s"}}, {"analysis": analysis}]


ANALYSIS_STEP = 2  # index of the analysis in gated_steps()


def success_rate(min_rate: float = 0.95) -> dict[str, Any]:
    return {"name": "success-rate", "successRate": {"minRate": min_rate, "minRequests": 20}}


def latency_vs_stable(ratio: float) -> dict[str, Any]:
    return {"name": "latency", "latency": {"quantile": 0.9, "maxRatioVsStable": ratio, "minRequests": 20}}


def stable_only_service(namespace: str, version: str) -> None:
    """A Service in front of one version's pods only: clients of it talk to the stable version and
    nothing else, so its failures are the stable version's."""
    apply(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{NAME}-{version}-only"},
            "spec": {
                "selector": {"modelship.dev/model-deployment": NAME, "modelship.dev/version": version},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )


def analysis_run(namespace: str, name: str = f"step-{ANALYSIS_STEP + 1}") -> dict[str, Any] | None:
    runs = mdep_status(namespace, NAME).get("analysisRuns") or []
    return next((r for r in runs if r["name"] == name), None)


def check_record(run: dict[str, Any] | None, check: str) -> dict[str, Any]:
    records = (run or {}).get("checks") or []
    return next((c for c in records if c["name"] == check), {})


def measurements(namespace: str, check: str) -> list[dict[str, Any]]:
    return list(check_record(analysis_run(namespace), check).get("measurements") or [])
