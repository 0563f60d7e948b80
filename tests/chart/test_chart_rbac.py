"""The chart's RBAC is enough for the operator, and no more.

"Enough" is shown by running the real operator with nothing but the chart's ServiceAccount
identity (a kubeconfig built from a token of it) and watching it roll a ModelDeployment out end to
end, through a Gateway API canary so that it writes every kind of object it may. "No more" is
shown by asking the apiserver's authorizer what that identity may do.

The operator always runs here with named namespaces, even for the cluster scope: other tests share
this cluster, each with its own operator. That the cluster scope may watch every namespace is
asked of the authorizer instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import Release, allowed, can_i, operator_as, service_account_kubeconfig, unique_release
from tests.support.k8s import (
    apply,
    delete_namespace,
    kubectl,
    mdep_status,
    model_deployment,
    new_namespace,
    wait_for,
)

WATCHED_RESOURCES = ["modeldeployments.modelship.dev", "deployments.apps", "pods", "services"]
WRITE_VERBS = ["create", "patch", "update", "delete"]
# What a ModelDeployment rolled out through a Gateway API canary owns once version 2 serves.
CHILDREN = [
    "deployment.apps/iris-2",
    "service/iris",
    "service/iris-stable",
    "service/iris-canary",
    "httproute.gateway.networking.k8s.io/iris",
]


@dataclass
class Installation:
    release: Release
    watched: list[str]  # where the operator serves ModelDeployments
    outside: list[str]  # namespaces it has no business in


@pytest.fixture(scope="module")
def cluster_scope(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """The default install (ClusterRole), and a namespace for models other than the release's."""
    release = Release(
        unique_release("rbac-cl"), new_namespace("chart-rbac-cluster"), tmp_path_factory.mktemp("cl")
    )
    models = new_namespace("chart-rbac-cluster-models")
    result = release.install({"rbac": {"scope": "cluster"}}, "--skip-crds")
    assert result.returncode == 0, result.stderr
    yield Installation(release, watched=[models], outside=[])
    release.uninstall()
    for name in (release.namespace, models):
        delete_namespace(name)


@pytest.fixture(scope="module")
def namespaced_scope(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """A namespaced install watching two namespaces; a third namespace is not on its list."""
    release = Release(
        unique_release("rbac-ns"), new_namespace("chart-rbac-ns"), tmp_path_factory.mktemp("ns")
    )
    watched = [new_namespace("chart-rbac-ns-a"), new_namespace("chart-rbac-ns-b")]
    other = new_namespace("chart-rbac-ns-other")
    result = release.install({"rbac": {"scope": "namespaced"}, "watchNamespaces": watched}, "--skip-crds")
    assert result.returncode == 0, result.stderr
    yield Installation(release, watched=watched, outside=[release.namespace, other])
    release.uninstall()
    for name in (release.namespace, *watched, other):
        delete_namespace(name)


def gateway_canary(version: str) -> dict[str, Any]:
    """A ModelDeployment rolled out as a canary whose traffic an HTTPRoute splits: it makes the
    operator use every kind of object it may write."""
    manifest = model_deployment("iris", version, replicas=2, steps=[{"setWeight": 50}])
    manifest["spec"]["rollout"]["canary"]["trafficRouting"] = {
        "gatewayAPI": {"parentRefs": [{"name": "public"}]}
    }
    return manifest


def serving(namespace: str) -> str | None:
    """ "<phase> on <stable version>", e.g. "Healthy on 2"."""
    status = mdep_status(namespace, "iris")
    return f"{status.get('phase')} on {status.get('stableVersion')}"


def rolled_out(namespace: str, version: str) -> bool:
    return serving(namespace) == f"Healthy on {version}"


def children(namespace: str) -> list[str]:
    return kubectl(
        "get",
        "deployments,services,httproutes",
        "-n",
        namespace,
        "-l",
        "modelship.dev/model-deployment=iris",
        "-o",
        "name",
    ).split()


def rolls_out_end_to_end(installation: Installation, tmp_path: Path) -> tuple[dict[str, object], str]:
    """Runs the operator as the chart's ServiceAccount; in each watched namespace, creates a
    ModelDeployment, waits for it to serve version 1, then rolls version 2 out through its canary.
    Reports what came of it (and the operator's log, to explain a failure)."""
    release = installation.release
    kubeconfig = service_account_kubeconfig(
        release.namespace, release.service_account, tmp_path / "sa.kubeconfig"
    )
    with operator_as(kubeconfig, installation.watched, tmp_path / "operator.log") as log_path:
        for version in ("1", "2"):
            for ns in installation.watched:
                apply(ns, gateway_canary(version))
            for ns in installation.watched:
                with contextlib.suppress(AssertionError):  # the outcome below says what it reached
                    wait_for(f"iris in {ns} to serve {version}", partial(rolled_out, ns, version))
    log = log_path.read_text(errors="replace")
    outcome = {
        "serving": {ns: serving(ns) for ns in installation.watched},
        "missing children": {ns: sorted(set(CHILDREN) - set(children(ns))) for ns in installation.watched},
        "refusals": [line for line in log.splitlines() if "forbidden" in line.lower()],
    }
    return outcome, log


def expected_outcome(installation: Installation) -> dict[str, object]:
    return {
        "serving": {ns: "Healthy on 2" for ns in installation.watched},
        "missing children": {ns: [] for ns in installation.watched},
        "refusals": [],
    }


# -- enough --------------------------------------------------------------------------------------


def test_operator_with_cluster_scope_rights_rolls_a_model_out(
    cluster_scope: Installation, tmp_path: Path
) -> None:
    # Given the chart installed cluster-wide, and the operator holding only its ServiceAccount's rights
    # When a user creates a ModelDeployment in a namespace other than the operator's, then rolls
    # a new version out through a Gateway API canary
    outcome, log = rolls_out_end_to_end(cluster_scope, tmp_path)
    # Then the new version serves, with its Deployment, Services and HTTPRoute, and nothing was
    # refused on the way
    assert outcome == expected_outcome(cluster_scope), log[-4000:]


def test_operator_with_namespaced_rights_rolls_models_out_in_each_watched_namespace(
    namespaced_scope: Installation, tmp_path: Path
) -> None:
    # Given the chart installed for two namespaces, and the operator holding only those rights
    # When a user creates a ModelDeployment in each, then rolls a new version out
    outcome, log = rolls_out_end_to_end(namespaced_scope, tmp_path)
    # Then both serve the new version with all their children, and nothing was refused
    assert outcome == expected_outcome(namespaced_scope), log[-4000:]


def test_cluster_scope_may_watch_every_namespace(cluster_scope: Installation) -> None:
    # Given the chart installed cluster-wide
    # When its identity asks to list and watch what the operator watches, across all namespaces
    checks = [(verb, resource, None) for resource in WATCHED_RESOURCES for verb in ("list", "watch")]
    # Then it may
    assert allowed(cluster_scope.release, checks) == checks


# -- no more -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["cluster_scope", "namespaced_scope"])
def test_service_account_cannot_read_secrets(scope: str, request: pytest.FixtureRequest) -> None:
    # Given the chart installed in either scope
    installation: Installation = request.getfixturevalue(scope)
    # When an administrator asks `kubectl auth can-i --as <its ServiceAccount>` to read Secrets
    # in its own namespace, where it serves models, and across the cluster
    places = [installation.release.namespace, *installation.watched, None]
    answers = {
        (verb, place): can_i(installation.release.subject, verb, "secrets", place)
        for place in places
        for verb in ("get", "list", "watch")
    }
    # Then the answer is no, everywhere
    assert [check for check, yes in answers.items() if yes] == []


def test_namespaced_service_account_cannot_touch_namespaces_outside_its_list(
    namespaced_scope: Installation,
) -> None:
    # Given the chart installed for two namespaces
    # When its identity asks to read or write what the operator handles in any other namespace
    # (its own included), or across the cluster
    places = [*namespaced_scope.outside, None]
    checks = [
        (verb, resource, place)
        for place in places
        for resource in WATCHED_RESOURCES
        for verb in ("get", "list", "watch", *WRITE_VERBS)
    ]
    # Then it may not
    assert allowed(namespaced_scope.release, checks) == []


@pytest.mark.parametrize("scope", ["cluster_scope", "namespaced_scope"])
def test_service_account_cannot_change_the_cluster_itself(scope: str, request: pytest.FixtureRequest) -> None:
    # Given the chart installed in either scope
    installation: Installation = request.getfixturevalue(scope)
    # When its identity asks to change namespaces, CRDs (its own included), RBAC or nodes
    cluster_objects = [
        "namespaces",
        "customresourcedefinitions.apiextensions.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "nodes",
    ]
    checks = [
        (verb, resource, place)
        for resource in cluster_objects
        for verb in WRITE_VERBS
        for place in (installation.release.namespace, None)
    ]
    # Then it may not
    assert allowed(installation.release, checks) == []
