"""The operator's own /metrics and liveness endpoint, as Prometheus and the kubelet see them."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.serving.support import free_port
from tests.support.k8s import OperatorProcess, apply, mdep_status, model_deployment, wait_for


def test_the_operator_exports_reconciles_rollouts_and_phases(namespace: str, tmp_path: Path) -> None:
    # Given an operator with its metrics and liveness endpoints on
    metrics_port, liveness_port = free_port(), free_port()
    op = OperatorProcess(
        [namespace],
        tmp_path / "operator.log",
        ["--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port)],
    )
    try:
        op.start()
        # When it rolls out a ModelDeployment
        apply(namespace, model_deployment("iris", "1", replicas=1))
        wait_for("Healthy", lambda: mdep_status(namespace, "iris").get("phase") == "Healthy")
        # Then /metrics counts the reconciles, the promotion and the phase
        text = wait_for(
            "metrics",
            lambda: requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
        )
        assert 'modelship_reconciles_total{result="ok"}' in text
        assert 'modelship_rollouts_total{outcome="promoted"} 1.0' in text
        assert 'modelship_modeldeployments{phase="Healthy"} 1.0' in text
        assert "modelship_reconcile_duration_seconds_bucket" in text
        # And the liveness endpoint answers
        health = requests.get(f"http://127.0.0.1:{liveness_port}/healthz", timeout=5)
        assert health.status_code == 200
    finally:
        op.stop()
