"""The chart as rendered text: lint, the value sets platform teams pass, and bad values refused.

Every rendering is also sent to the real apiserver as a server-side dry run, so "renders" means
"would be admitted", not only "is YAML".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import (
    CHART,
    Release,
    find,
    helm,
    operator_container,
    render,
    template,
    unique_release,
)
from tests.support.k8s import REPO, delete_namespace, kubectl, kubectl_result, new_namespace

RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
OPERATOR_RULES = {
    # (apiGroup, resource): verbs, exactly what the operator and kopf use.
    ("modelship.dev", "modeldeployments"): {"get", "list", "watch"},
    ("modelship.dev", "modeldeployments/status"): {"get", "patch", "update"},
    ("modelship.dev", "modeldeployments/finalizers"): {"update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "update",
        "delete",
    },
}


@dataclass(frozen=True)
class Namespaces:
    release: str
    watched: list[str]


@dataclass(frozen=True)
class ValueSet:
    """Values a platform team might pass, and the operator flags and image they must lead to."""

    id: str
    values: Callable[[Namespaces], dict[str, Any]]
    flags: Callable[[Namespaces], list[str]]
    image: str = "ghcr.io/modelship/modelship-operator:0.1.0"


VALUE_SETS = [
    ValueSet(
        "defaults",
        values=lambda ns: {},
        flags=lambda ns: [
            "--serving-image=ghcr.io/modelship/modelship-server:0.1.0",
            "--log-format=text",
            "--log-level=INFO",
            "--watch-server-timeout=300",
            "--watch-client-timeout=330",
            "--max-workers=20",
            "--kube-api-qps=50",
            "--kube-api-burst=100",
            "--metrics-port=8080",
            "--liveness-port=8081",
        ],
    ),
    ValueSet(
        "namespaced-two-namespaces",
        values=lambda ns: {"rbac": {"scope": "namespaced"}, "watchNamespaces": ns.watched},
        flags=lambda ns: [f"--namespace={name}" for name in ns.watched],
    ),
    ValueSet(
        "json-logs",
        values=lambda ns: {
            "operator": {
                "logFormat": "json",
                "logLevel": "debug",
                "watch": {"serverTimeout": 60, "clientTimeout": 90},
                "maxWorkers": 4,
                "kubeApi": {"qps": 200, "burst": 400},
            }
        },
        flags=lambda ns: [
            "--log-format=json",
            "--log-level=DEBUG",
            "--watch-server-timeout=60",
            "--watch-client-timeout=90",
            "--max-workers=4",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ],
    ),
    ValueSet(
        "prometheus",
        values=lambda ns: {"prometheus": {"url": "http://prometheus-operated.monitoring.svc:9090"}},
        flags=lambda ns: ["--prometheus-url=http://prometheus-operated.monitoring.svc:9090"],
    ),
    ValueSet(
        "custom-image",
        values=lambda ns: {
            "image": {"repository": "registry.example.com/ml/modelship-operator", "tag": "0.1.0-rc.1"},
            "operator": {"servingImage": "registry.example.com/ml/modelship-server:0.1.0-rc.1"},
        },
        flags=lambda ns: ["--serving-image=registry.example.com/ml/modelship-server:0.1.0-rc.1"],
        image="registry.example.com/ml/modelship-operator:0.1.0-rc.1",
    ),
]


@pytest.fixture(scope="module")
def namespaces(cluster: None) -> Iterator[Namespaces]:
    """A release namespace and two other namespaces to watch (server-side dry runs of Roles need
    their namespaces to exist)."""
    made = [new_namespace("chart-render"), new_namespace("chart-watched-a"), new_namespace("chart-watched-b")]
    yield Namespaces(release=made[0], watched=made[1:])
    for name in made:
        delete_namespace(name)


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


# -- lint and the generated CRD ------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_chart_passes_strict_helm_lint(scope: str) -> None:
    # Given the chart, in either RBAC scope
    # When helm lints it strictly
    result = helm("lint", "--strict", str(CHART), "--set", f"rbac.scope={scope}")
    # Then it finds nothing to complain about
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_ships_the_generated_crd_unchanged() -> None:
    # Given the CRD rendered from the pydantic models by `make crd`
    generated = (REPO / "crds/modeldeployments.modelship.dev.yaml").read_text()
    # Then the chart's copy is that file, byte for byte
    shipped = (CHART / "crds/modeldeployments.modelship.dev.yaml").read_text()
    assert shipped == generated, "charts/modelship/crds/ is stale: run `make crd`"


# -- value sets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=lambda v: v.id)
def test_rendered_chart_is_admitted_by_the_apiserver(
    value_set: ValueSet, namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given a value set, rendered the way Argo CD renders the chart
    rendered = template("render", namespaces.release, value_set.values(namespaces), tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    # When the apiserver is asked to admit every object (a server-side dry run)
    result = kubectl_result("apply", "--dry-run=server", "-f", "-", input=rendered.stdout)
    # Then it admits all of them
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=lambda v: v.id)
def test_operator_flags_and_image_follow_the_values(
    value_set: ValueSet, namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given a value set
    objects = render("flags", namespaces.release, value_set.values(namespaces), tmp_path)
    # When the operator container is rendered
    container = operator_container(objects)
    # Then it runs the chosen image with the flags those values stand for
    missing = [flag for flag in value_set.flags(namespaces) if flag not in container["args"]]
    assert (container["image"], missing) == (value_set.image, [])


def test_cluster_scope_watches_every_namespace_with_one_cluster_role(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given the default scope
    objects = render("scope", namespaces.release, {"rbac": {"scope": "cluster"}}, tmp_path)
    # Then the rights come from one ClusterRole bound to the ServiceAccount, no Role, and the
    # operator is not limited to any namespace
    container = operator_container(objects)
    shape = (
        len(find(objects, "ClusterRole")),
        len(find(objects, "ClusterRoleBinding")),
        find(objects, "Role"),
        [arg for arg in container["args"] if arg.startswith("--namespace")],
    )
    assert shape == (1, 1, [], [])


def test_namespaced_scope_grants_a_role_in_each_watched_namespace_only(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given the namespaced scope with two namespaces to watch
    values = {"rbac": {"scope": "namespaced"}, "watchNamespaces": namespaces.watched}
    objects = render("scope", namespaces.release, values, tmp_path)
    # Then each of them, and only they, get a Role and a RoleBinding; nothing is cluster-wide
    placed = {
        kind: sorted(obj["metadata"]["namespace"] for obj in find(objects, kind))
        for kind in ("Role", "RoleBinding")
    }
    cluster_wide = find(objects, "ClusterRole") + find(objects, "ClusterRoleBinding")
    assert (placed, cluster_wide) == (
        {"Role": sorted(namespaces.watched), "RoleBinding": sorted(namespaces.watched)},
        [],
    )


def test_namespaced_scope_with_no_list_watches_the_release_namespace(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given the namespaced scope and no watchNamespaces
    objects = render("scope", namespaces.release, {"rbac": {"scope": "namespaced"}}, tmp_path)
    # Then the operator watches its own namespace, where its Role is
    container = operator_container(objects)
    roles = [role["metadata"]["namespace"] for role in find(objects, "Role")]
    watched = [arg for arg in container["args"] if arg.startswith("--namespace")]
    assert (roles, watched) == ([namespaces.release], [f"--namespace={namespaces.release}"])


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_rbac_grants_exactly_what_the_operator_uses(
    scope: str, namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given either scope
    objects = render("rules", namespaces.release, {"rbac": {"scope": scope}}, tmp_path)
    (role,) = find(objects, "ClusterRole" if scope == "cluster" else "Role")
    # Then every rule names its groups, resources and verbs (no wildcard, no Secrets), and
    # together they are the operator's list
    assert rules_of(role) == OPERATOR_RULES


# -- the operator pod ----------------------------------------------------------------------------


def test_operator_pod_meets_the_restricted_pod_security_standard(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    # Given the default values
    objects = render("pss", namespaces.release, {}, tmp_path)
    (deployment,) = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(objects)
    # Then the pod runs as a numeric non-root user under RuntimeDefault seccomp, and the
    # container can neither escalate, nor keep a capability, nor write its root filesystem
    assert (
        {key: pod["securityContext"].get(key) for key in RESTRICTED_POD},
        isinstance(pod["securityContext"].get("runAsUser"), int),
        {key: container["securityContext"].get(key) for key in RESTRICTED_CONTAINER},
    ) == (RESTRICTED_POD, True, RESTRICTED_CONTAINER)


def test_operator_runs_one_replica_replaced_with_recreate(namespaces: Namespaces, tmp_path: Path) -> None:
    # Given the default values (kopf has no leader election: two operators would fight)
    (deployment,) = find(render("replicas", namespaces.release, {}, tmp_path), "Deployment")
    # Then there is one replica, and an upgrade stops it before starting the next
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (1, {"type": "Recreate"})


def test_probes_and_metrics_service_use_the_operators_ports(namespaces: Namespaces, tmp_path: Path) -> None:
    # Given custom ports
    values = {"metrics": {"port": 9090, "service": {"port": 9100}}, "liveness": {"port": 9091}}
    objects = render("ports", namespaces.release, values, tmp_path)
    container = operator_container(objects)
    (service,) = find(objects, "Service")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    # Then both probes ask kopf's /healthz on the liveness port, and the Service reaches /metrics
    assert (
        container["livenessProbe"]["httpGet"],
        container["readinessProbe"]["httpGet"],
        ports,
        [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]],
    ) == (
        {"path": "/healthz", "port": "healthz"},
        {"path": "/healthz", "port": "healthz"},
        {"metrics": 9090, "healthz": 9091},
        [(9100, "metrics")],
    )


# -- bad values ----------------------------------------------------------------------------------

BAD_VALUES = {
    "unknown-scope": ({"rbac": {"scope": "everything"}}, "at '/rbac/scope': value must be one of"),
    "log-format": ({"operator": {"logFormat": "xml"}}, "at '/operator/logFormat'"),
    "log-level": ({"operator": {"logLevel": "verbose"}}, "at '/operator/logLevel'"),
    "zero-workers": ({"operator": {"maxWorkers": 0}}, "at '/operator/maxWorkers'"),
    "zero-qps": ({"operator": {"kubeApi": {"qps": 0}}}, "at '/operator/kubeApi/qps'"),
    "timeout-type": ({"operator": {"watch": {"serverTimeout": "5m"}}}, "at '/operator/watch/serverTimeout'"),
    "namespace-name": (
        {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["Models_Prod"]},
        "at '/watchNamespaces/0'",
    ),
    "replica-count": ({"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    "image-digest": ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    "root-user": ({"podSecurityContext": {"runAsUser": 0}}, "at '/podSecurityContext/runAsUser'"),
    "port-range": ({"metrics": {"port": 70000}}, "at '/metrics/port'"),
    "prometheus-url": ({"prometheus": {"url": "prometheus:9090"}}, "at '/prometheus/url'"),
    "namespaces-with-cluster-scope": (
        {"rbac": {"scope": "cluster"}, "watchNamespaces": ["models"]},
        'watchNamespaces is set (models) but rbac.scope is "cluster"',
    ),
    "client-timeout": (
        {"operator": {"watch": {"serverTimeout": 300, "clientTimeout": 60}}},
        "operator.watch.clientTimeout (60) must be greater than operator.watch.serverTimeout (300)",
    ),
    "same-ports": ({"metrics": {"port": 8081}}, "metrics.port and liveness.port are both 8081"),
}


@pytest.mark.parametrize(("values", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_with_a_message_naming_the_value(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    # Given a value the chart cannot honour
    # When the chart is rendered with it
    result = template("bad", "default", values, tmp_path)
    # Then helm refuses, saying which value is wrong
    assert (result.returncode, message in result.stderr) == (1, True), result.stderr


def test_helm_install_with_bad_values_creates_nothing(namespaces: Namespaces, tmp_path: Path) -> None:
    # Given a release whose values the schema refuses
    release = Release(unique_release("bad"), namespaces.release, tmp_path)
    # When a platform team runs helm install
    result = release.install({"rbac": {"scope": "everything"}}, "--skip-crds")
    # Then helm fails before touching the cluster: no release, no object
    leftovers = kubectl(
        "get",
        "all,sa,roles",
        "-n",
        namespaces.release,
        "-l",
        f"app.kubernetes.io/instance={release.name}",
        "-o",
        "name",
    )
    assert (result.returncode, "at '/rbac/scope'" in result.stderr, leftovers) == (1, True, "")
