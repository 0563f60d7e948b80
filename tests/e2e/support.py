"""Test support for the real node: serving pods that run the built image, a model host inside the
cluster, and a load generator that talks to a Service's ClusterIP the way real clients do.

The host reaches ClusterIPs through the node's kube-proxy rules and pod addresses through the node's
bridge (hack/node.sh); no request leaves this machine.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from typing import Any

import requests
import skops.io
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from hack.traffic import v2_body
from tests.support.k8s import REPO, apply, get_json, kubectl, wait_for

REAL_NODE = "modelship-real-0"
REAL_LABEL = "node.modelship.dev/real"
# One worker per pod: the node has 2 cores and tests run several pods at once.
ONE_WORKER = [{"name": "MODELSHIP_WORKERS", "value": "1"}]


def on_real_node(**serving: Any) -> dict[str, Any]:
    """spec.serving that places the serving pods on the real node (and nowhere else)."""
    return {
        "nodeSelector": {REAL_LABEL: "true"},
        "tolerations": [{"key": REAL_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
        "env": ONE_WORKER,
        **serving,
    }


def restricted_namespace(namespace: str) -> None:
    """Enforce the restricted Pod Security Standard: a pod that breaks it is refused at creation."""
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")


def iris_model_bytes() -> bytes:
    x, y = load_iris(return_X_y=True)
    buf = io.BytesIO()
    skops.io.dump(LogisticRegression(max_iter=1000).fit(x, y), buf)
    return buf.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_host(namespace: str, files: dict[str, bytes]) -> str:
    """Serves `files` over plain HTTP from a pod on the real node, exactly as
    examples/real-node/model-host.yaml does; returns the in-cluster base URL."""
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "models"},
        "binaryData": {name: base64.b64encode(data).decode() for name, data in files.items()},
    }
    apply(namespace, cm, *yaml.safe_load_all((REPO / "examples/real-node/model-host.yaml").read_text()))
    kubectl("-n", namespace, "rollout", "status", "deployment/model-host", "--timeout=120s", timeout=130)
    return f"http://models.{namespace}.svc.cluster.local"


def cluster_ip(namespace: str, service: str) -> str:
    ip: str = get_json("-n", namespace, "service", service)["spec"]["clusterIP"]
    return ip


def ready_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = get_json("-n", namespace, "pods", "-l", selector)["items"]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def wait_ready_on_real_node(namespace: str, selector: str, count: int, timeout: float = 180) -> None:
    def enough() -> bool:
        pods = ready_pods(namespace, selector)
        assert all(p["spec"]["nodeName"] == REAL_NODE for p in pods), "a serving pod left the real node"
        return len(pods) >= count

    wait_for(f"{count} Ready pods ({selector}) on {REAL_NODE}", enough, timeout=timeout)


def wait_answering(ip: str, model: str, timeout: float = 30) -> None:
    """Until the Service answers a V2 request: a pod that just turned Ready reaches kube-proxy's
    rules through its EndpointSlice a moment later."""

    def answers() -> bool:
        try:
            return requests.post(f"http://{ip}/v2/models/{model}/infer", json=v2_body(), timeout=5).ok
        except requests.RequestException:
            return False

    wait_for(f"{model} answering through {ip}", answers, timeout=timeout)


def binomial_bound(n: int, p: float, z: float = 4.0) -> float:
    """Half-width of a z-sigma interval for a share drawn from Binomial(n, p): z = 4 makes a false
    failure about 1 in 16,000 per check, while a share off by a whole step still fails."""
    return z * math.sqrt(p * (1 - p) / n)
