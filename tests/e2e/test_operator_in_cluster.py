"""The operator as a platform team runs it: the chart installs the built operator image, which runs
on the real node in-cluster (its ServiceAccount token, its probes and its /metrics are real) and
reconciles a ModelDeployment whose pods serve real requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hack.traffic import v2_body
from tests.chart.helm import Release, unique_release
from tests.e2e.support import (
    REAL_LABEL,
    REAL_NODE,
    cluster_ip,
    model_host,
    on_real_node,
    restricted_namespace,
    sha256_hex,
    wait_answering,
)
from tests.support.k8s import apply, delete_namespace, get_json, mdep_status, new_namespace, wait_for

ON_REAL_NODE = {
    "nodeSelector": {REAL_LABEL: "true"},
    "tolerations": [{"key": REAL_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture
def release_watching(real_node: str, tmp_path: Path) -> Iterator[tuple[Release, str]]:
    """The chart (namespaced scope) in a restricted namespace, watching a second namespace for
    ModelDeployments; the operator pod placed on the real node."""
    models = new_namespace("in-cluster-models")
    restricted_namespace(models)
    release = Release(unique_release("real"), new_namespace("in-cluster-operator"), tmp_path)
    restricted_namespace(release.namespace)
    result = release.install(
        {"rbac": {"scope": "namespaced"}, "watchNamespaces": [models], **ON_REAL_NODE},
        "--skip-crds",
        "--wait",
        "--timeout",
        "180s",
    )
    assert result.returncode == 0, result.stderr
    yield release, models
    release.uninstall()
    delete_namespace(release.namespace)
    delete_namespace(models)


def test_the_chart_runs_the_operator_image_on_the_real_node_and_it_serves_a_model(
    release_watching: tuple[Release, str], iris_model: bytes
) -> None:
    release, models = release_watching
    # Given the released operator pod: on the real node, Ready by its real probes
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=operator"
    (pod,) = get_json("pods", "-n", release.namespace, "-l", selector)["items"]
    assert pod["spec"]["nodeName"] == REAL_NODE
    assert [c["ready"] for c in pod["status"]["containerStatuses"]] == [True]
    # When a ModelDeployment appears in the namespace it watches
    base = model_host(models, {"iris.skops": iris_model})
    apply(
        models,
        {
            "apiVersion": "modelship.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris"},
            "spec": {
                "model": {"version": "v1", "uri": f"{base}/iris.skops", "sha256": sha256_hex(iris_model)},
                "replicas": 1,
                "serving": on_real_node(),
            },
        },
    )
    # Then the in-cluster operator (its ServiceAccount token, through the kubernetes Service)
    # brings it to Healthy, and the model answers real requests
    wait_for(
        "iris Healthy",
        lambda: mdep_status(models, "iris").get("phase") == "Healthy",
        timeout=180,
    )
    wait_answering(cluster_ip(models, "iris"), "iris")
    answer = requests.post(
        f"http://{cluster_ip(models, 'iris')}/v2/models/iris/infer", json=v2_body(), timeout=10
    )
    assert answer.status_code == 200 and answer.json()["model_version"] == "v1", answer.text
    # And its /metrics, scraped through its metrics Service, counts the reconciles it made
    metrics_ip = cluster_ip(release.namespace, f"{release.name}-modelship-metrics")
    text = requests.get(f"http://{metrics_ip}:8080/metrics", timeout=10).text
    ok = [line for line in text.splitlines() if line.startswith('modelship_reconciles_total{result="ok"}')]
    assert ok and float(ok[0].split()[-1]) >= 1, ok
