"""The chart's life in a cluster: install under the restricted Pod Security Standard, upgrade
with changed values, uninstall. Nothing may be left behind but the CRD and the users'
ModelDeployments, which must survive every step.

The CRD is shared with every other test on this cluster: it is never deleted here. Helm installs
crds/ only when the CRD is absent, so the install below finds it present and leaves it alone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.chart.helm import Release, helm_ok, objects_of_release, unique_release
from tests.support.k8s import (
    apply,
    delete_namespace,
    get_json,
    kubectl,
    kubectl_result,
    model_deployment,
    new_namespace,
    wait_for,
)

CRD = "customresourcedefinition/modeldeployments.modelship.dev"
RESTRICTED = [
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
    "pod-security.kubernetes.io/warn=restricted",
    "pod-security.kubernetes.io/audit=restricted",
]


def restricted_namespace(prefix: str) -> str:
    name = new_namespace(prefix)
    kubectl("label", "namespace", name, *RESTRICTED)
    return name


def operator_pods(release: Release) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=operator"
    pods: list[dict[str, Any]] = get_json("pods", "-n", release.namespace, "-l", selector)["items"]
    return pods


def one_or_none(pods: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return pods if len(pods) == 1 else None


def is_running_and_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and ready


# -- install -------------------------------------------------------------------------------------


@dataclass
class Installed:
    release: Release
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def installed(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The chart with its default values (cluster scope), installed as a platform team would,
    into a fresh namespace that enforces the restricted Pod Security Standard."""
    release = Release(
        unique_release("pss"), restricted_namespace("chart-pss"), tmp_path_factory.mktemp("pss")
    )
    result = release.install({}, "--wait", "--timeout", "90s")
    yield Installed(release, result)
    release.uninstall()
    delete_namespace(release.namespace)


def test_helm_install_into_a_restricted_namespace_succeeds_without_a_warning(installed: Installed) -> None:
    # Given a namespace enforcing (and warning about) the restricted Pod Security Standard
    # When the chart is installed with its defaults
    # Then helm succeeds and the apiserver has no Pod Security warning for any object
    assert (installed.result.returncode, "PodSecurity" in installed.result.stderr) == (0, False), (
        installed.result.stderr
    )


def test_every_object_of_the_release_is_admitted(installed: Installed) -> None:
    # Given the installed release
    manifest = helm_ok("get", "manifest", installed.release.name, "-n", installed.release.namespace)
    expected = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(manifest) if doc}
    # When every object it renders is looked up in the cluster
    found = kubectl_result(
        "get", "-f", "-", "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name} {end}", input=manifest
    )
    # Then all of them are there
    assert found.returncode == 0, found.stderr
    assert {tuple(item.split("/", 1)) for item in found.stdout.split()} == expected


def test_operator_pod_runs_in_the_restricted_namespace(installed: Installed) -> None:
    # Given the installed release (its Deployment admitted and its pod scheduled on a kwok node)
    # Then exactly one operator pod is Running and Ready
    pods = wait_for("the operator pod to be Ready", lambda: operator_pods(installed.release) or None)
    assert [is_running_and_ready(pod) for pod in pods] == [True]


# -- upgrade -------------------------------------------------------------------------------------


@dataclass
class Upgraded:
    release: Release
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def upgraded(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgraded]:
    """A cluster-scope release upgraded to namespaced scope (its own namespace), JSON logs and
    another serving image."""
    release = Release(
        unique_release("upg"), restricted_namespace("chart-upgrade"), tmp_path_factory.mktemp("upg")
    )
    install = release.install({}, "--skip-crds", "--wait", "--timeout", "90s")
    assert install.returncode == 0, install.stderr
    result = release.upgrade(
        {
            "rbac": {"scope": "namespaced"},
            "watchNamespaces": [release.namespace],
            "operator": {"logFormat": "json", "servingImage": "registry.example.com/server:2"},
        },
        "--skip-crds",
        "--wait",
        "--timeout",
        "90s",
    )
    yield Upgraded(release, result)
    release.uninstall()
    delete_namespace(release.namespace)


def test_upgrade_to_namespaced_scope_leaves_no_cluster_wide_rights_behind(upgraded: Upgraded) -> None:
    # Given a release installed cluster-wide
    # When it is upgraded to the namespaced scope
    assert upgraded.result.returncode == 0, upgraded.result.stderr
    # Then its ClusterRole and ClusterRoleBinding are gone, replaced by a Role and RoleBinding
    kinds = sorted(name.split("/")[0].split(".")[0] for name in objects_of_release(upgraded.release.name))
    assert [kind for kind in kinds if kind.startswith(("clusterrole", "role"))] == [
        "role",
        "rolebinding",
    ]


def test_upgrade_restarts_the_operator_with_the_new_settings(upgraded: Upgraded) -> None:
    # Given the upgraded release
    name = f"{upgraded.release.name}-modelship"
    # When its rollout is done (Recreate: the old pod is gone before the new one starts)
    kubectl("rollout", "status", f"deployment/{name}", "-n", upgraded.release.namespace, "--timeout=60s")
    # Then the one operator pod runs with the new flags
    pods = wait_for("one operator pod", lambda: one_or_none(operator_pods(upgraded.release)))
    args = pods[0]["spec"]["containers"][0]["args"]
    assert {
        "--log-format=json",
        "--serving-image=registry.example.com/server:2",
        f"--namespace={upgraded.release.namespace}",
    } <= set(args)


# -- uninstall -----------------------------------------------------------------------------------


@dataclass
class Uninstalled:
    release: Release
    models_namespace: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module", params=["cluster", "namespaced"])
def uninstalled(
    request: pytest.FixtureRequest, cluster: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Uninstalled]:
    """A release (either scope) whose users created a ModelDeployment in another namespace,
    then uninstalled."""
    scope: str = request.param
    release = Release(
        unique_release(f"rm-{scope[:2]}"),
        restricted_namespace("chart-uninstall"),
        tmp_path_factory.mktemp("rm"),
    )
    models = new_namespace("chart-uninstall-models")
    values: dict[str, object] = {"rbac": {"scope": scope}}
    if scope == "namespaced":
        values["watchNamespaces"] = [models]
    install = release.install(values, "--skip-crds", "--wait", "--timeout", "90s")
    assert install.returncode == 0, install.stderr
    apply(models, model_deployment("iris", "1"))
    result = release.uninstall()
    yield Uninstalled(release, models, result)
    delete_namespace(models)
    delete_namespace(release.namespace)


def test_uninstall_leaves_no_object_of_the_release(uninstalled: Uninstalled) -> None:
    # Given an installed release
    # When it is uninstalled
    assert uninstalled.result.returncode == 0, uninstalled.result.stderr
    # Then nothing it created is left: no (Cluster)Role or binding, no ServiceAccount, no
    # Deployment, ReplicaSet, pod or Service, no Helm release record
    wait_for(
        "the release's objects to be gone",
        lambda: objects_of_release(uninstalled.release.name) == [],
        timeout=60,
    )


def test_uninstall_keeps_the_crd_and_the_users_model_deployments(uninstalled: Uninstalled) -> None:
    # Given a release uninstalled while a user's ModelDeployment existed
    # Then the CRD is still installed, and with it the ModelDeployment
    found = kubectl_result(
        "get", CRD, "modeldeployment/iris", "-n", uninstalled.models_namespace, "-o", "name"
    )
    assert found.stdout.split() == [
        "customresourcedefinition.apiextensions.k8s.io/modeldeployments.modelship.dev",
        "modeldeployment.modelship.dev/iris",
    ], found.stderr
