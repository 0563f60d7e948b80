"""The Argo CD examples: an Application that installs the chart, one that syncs a folder of
ModelDeployments, and the script that wires the ModelDeployment health check into argocd-cm.

No Argo CD runs here (its CRDs are not installed in the shared cluster), so the Applications are
checked for what Argo CD would do with them: render the chart with their values (as Argo CD runs
`helm template`), sync the folder they name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.chart.helm import CHART, template
from tests.support.k8s import ENV, REPO, kubectl, kubectl_result

EXAMPLES = REPO / "examples/argocd"
HEALTH_KEY = "resource.customizations.health.modelship.dev_ModelDeployment"


def application(name: str) -> dict[str, Any]:
    app: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    return app


def install_health_check(argocd_namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXAMPLES / "install-health-check.sh")],
        capture_output=True,
        text=True,
        env={**ENV, "ARGOCD_NAMESPACE": argocd_namespace},
        timeout=60,
    )


def test_operator_application_renders_this_chart_into_admitted_objects(
    namespace: str, tmp_path: Path
) -> None:
    # Given the Application that installs Modelship
    source = application("modelship.yaml")["spec"]["source"]
    assert REPO / source["path"] == CHART
    # When the chart is rendered with the Application's release name and values, as Argo CD does
    rendered = template(source["helm"]["releaseName"], namespace, source["helm"]["valuesObject"], tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    # Then the apiserver admits every object
    admitted = kubectl_result("apply", "--dry-run=server", "-f", "-", input=rendered.stdout)
    assert admitted.returncode == 0, admitted.stderr


def test_operator_application_can_never_delete_the_crd() -> None:
    # Given the Application that installs Modelship (and so the CRD all ModelDeployments live in)
    app = application("modelship.yaml")
    # Then deleting it leaves its resources in place (no resources-finalizer), and it never
    # drops the CRD from its render (pruning would then delete every ModelDeployment)
    assert (
        app["metadata"].get("finalizers", []),
        app["spec"]["source"]["helm"].get("skipCrds", False),
    ) == ([], False)


def test_models_application_syncs_only_model_deployments_after_the_operator() -> None:
    # Given the two Applications
    operator, models = application("modelship.yaml"), application("models.yaml")
    source = models["spec"]["source"]
    folder = REPO / source["path"]
    # When Argo CD reads the folder the models Application names (its own files, not subfolders)
    assert source["directory"]["recurse"] is False
    docs = [
        doc
        for path in sorted(folder.glob(source["directory"]["include"]))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    # Then it finds only ModelDeployments, none pinned to a namespace of its own, and the
    # Application syncs in a later wave than the operator's
    waves = [
        int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for app in (operator, models)
    ]
    assert (
        sorted({doc["kind"] for doc in docs}),
        [doc["metadata"]["name"] for doc in docs if "namespace" in doc["metadata"]],
        waves[0] < waves[1],
    ) == (["ModelDeployment"], [], True)


def test_health_check_script_sets_the_argocd_cm_key_from_health_lua(namespace: str) -> None:
    # Given an Argo CD namespace whose argocd-cm already holds settings
    kubectl(
        "-n", namespace, "create", "configmap", "argocd-cm", "--from-literal=url=https://argocd.example.com"
    )
    # When the install script runs
    result = install_health_check(namespace)
    assert result.returncode == 0, result.stderr
    # Then argocd-cm carries the health check, verbatim from argocd/health.lua, beside the
    # settings it had
    data = json.loads(kubectl("-n", namespace, "get", "configmap", "argocd-cm", "-o", "json"))["data"]
    assert data == {"url": "https://argocd.example.com", HEALTH_KEY: (REPO / "argocd/health.lua").read_text()}


def test_health_check_script_refuses_a_namespace_without_argo_cd(namespace: str) -> None:
    # Given a namespace with no argocd-cm
    # When the install script is pointed at it
    result = install_health_check(namespace)
    # Then it fails, says why, and creates no argocd-cm of its own
    leftover = kubectl_result("-n", namespace, "get", "configmap", "argocd-cm")
    assert (result.returncode, "no ConfigMap argocd-cm" in result.stderr, leftover.returncode) == (1, True, 1)
