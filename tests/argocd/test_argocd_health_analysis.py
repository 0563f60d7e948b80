"""The Argo CD health check on a canary its metric gate failed: Degraded, naming the failing check.

The object is captured live: an operator measures a custom check against the local Prometheus
(`vector(1)`, above its maximum of 0.5) and rolls version 2 back.
"""

from __future__ import annotations

from typing import Any

from tests.argocd import argocd_lua
from tests.support.k8s import OperatorProcess, apply, get_json, model_deployment, wait_for

ABOVE_MAX = {"name": "queue-depth", "prometheus": {"query": "vector(1)", "max": 0.5}}
STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"analysis": {"interval": "2s", "count": 2, "checks": [ABOVE_MAX]}},
]


def _md(version: str) -> dict[str, Any]:
    return model_deployment("iris", version, replicas=2, steps=STEPS)


def _status(ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = get_json("-n", ns, "mdep", "iris")
    return obj


def test_a_canary_failed_by_its_gate_is_degraded_naming_the_check(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given version 1 stable and version 2 failed by its analysis
    apply(namespace, _md("1"))
    wait_for("version 1 stable", lambda: _status(namespace).get("status", {}).get("stableVersion") == "1", 90)
    apply(namespace, _md("2"))
    obj = wait_for(
        "version 2 rolled back",
        lambda: (o := _status(namespace)).get("status", {}).get("failedVersion") == "2" and o,
        90,
    )
    # When Argo CD assesses its health
    result = argocd_lua.health(obj)
    # Then it is Degraded, and the message names the failing check
    assert result["status"] == "Degraded"
    assert "check queue-depth failed" in result["message"]
