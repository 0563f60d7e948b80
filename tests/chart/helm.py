"""Helm and ServiceAccount helpers for the chart's tests.

The chart is exercised as a platform team would: `helm template`, `helm install`, `helm upgrade`,
`helm uninstall` against the local cluster, and the operator run with no more rights than the
chart's ServiceAccount holds (a kubeconfig made from a token of that ServiceAccount).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.k8s import ENV, REPO, kubectl

CHART = REPO / "charts/modelship"
# Every object the chart creates carries this label, set to the release's name.
INSTANCE_LABEL = "app.kubernetes.io/instance"


def helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs helm against the local cluster; the caller checks the result (refusals are expected)."""
    return subprocess.run(["helm", *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def helm_ok(*args: str, timeout: float = 120) -> str:
    result = helm(*args, timeout=timeout)
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def unique_release(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def values_file(tmp_dir: Path, values: dict[str, Any]) -> Path:
    path = tmp_dir / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def template(
    release: str, namespace: str, values: dict[str, Any], tmp_dir: Path
) -> subprocess.CompletedProcess[str]:
    return helm(
        "template", release, str(CHART), "--namespace", namespace, "-f", str(values_file(tmp_dir, values))
    )


def render(release: str, namespace: str, values: dict[str, Any], tmp_dir: Path) -> list[dict[str, Any]]:
    """The objects `helm template` renders (CRDs excluded, as helm does by default)."""
    result = template(release, namespace, values, tmp_dir)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = find(objects, "Deployment")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


@dataclass
class Release:
    """A release of the chart installed into its own namespace, uninstalled by `uninstall`."""

    name: str
    namespace: str
    tmp_dir: Path
    installed: bool = field(default=False)

    @property
    def service_account(self) -> str:
        # The chart's default: the release's full name (the release name does not contain "modelship").
        return f"{self.name}-modelship"

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def install(self, values: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        result = self._release("install", values, *extra)
        self.installed = self.installed or result.returncode == 0
        return result

    def upgrade(self, values: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        return self._release("upgrade", values, *extra)

    def _release(self, verb: str, values: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        values_path = str(values_file(self.tmp_dir, values))
        return helm(verb, self.name, str(CHART), "--namespace", self.namespace, "-f", values_path, *extra)

    def uninstall(self) -> subprocess.CompletedProcess[str]:
        """Removes everything the release created (its ClusterRole too); keeps the CRD."""
        result = helm("uninstall", self.name, "--namespace", self.namespace, "--ignore-not-found", "--wait")
        self.installed = False
        return result


def objects_of_release(release: str) -> list[str]:
    """Every object left anywhere in the cluster that carries the release's instance label, plus
    Helm's own release records: what `helm uninstall` must leave empty."""
    selector = f"{INSTANCE_LABEL}={release}"
    namespaced = kubectl(
        "get",
        "deployments.apps,replicasets.apps,pods,services,serviceaccounts,configmaps,"
        "roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
        "--all-namespaces",
        "-l",
        selector,
        "-o",
        "name",
    ).split()
    cluster_wide = kubectl(
        "get",
        "clusterroles.rbac.authorization.k8s.io,clusterrolebindings.rbac.authorization.k8s.io",
        "-l",
        selector,
        "-o",
        "name",
    ).split()
    helm_records = kubectl(
        "get", "secrets", "--all-namespaces", "-l", f"owner=helm,name={release}", "-o", "name"
    ).split()
    return namespaced + cluster_wide + helm_records


def can_i(subject: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i --as <subject>`, as an administrator would ask it; namespace None asks
    about every namespace at once."""
    where = ["--all-namespaces"] if namespace is None else ["--namespace", namespace]
    answer = kubectl("auth", "can-i", verb, resource, "--as", subject, *where, check=False).strip()
    return answer == "yes"


Check = tuple[str, str, str | None]  # (verb, "resource.group", namespace; None: every namespace)


def allowed(release: Release, checks: Sequence[Check]) -> list[Check]:
    """The checks the release's ServiceAccount passes, asked of the apiserver's authorizer in one
    batch of SubjectAccessReviews: what `can_i` asks, without a kubectl process per check."""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{release.namespace}", "system:authenticated"]
    reviews = []
    for verb, resource, namespace in checks:
        plural, _, group = resource.partition(".")
        reviews.append(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": release.subject,
                    "groups": groups,
                    "resourceAttributes": {
                        "namespace": namespace or "",
                        "verb": verb,
                        "group": group,
                        "resource": plural,
                    },
                },
            }
        )
    answers = kubectl(
        "create",
        "-f",
        "-",
        "-o",
        'jsonpath={.status.allowed}{"\\n"}',
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
    ).splitlines()
    assert len(answers) == len(checks), answers
    return [check for check, answer in zip(checks, answers, strict=True) if answer == "true"]


def service_account_kubeconfig(namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a short-lived token) against the
    local cluster's server and CA: what the operator's pod would get, outside a pod."""
    token = kubectl("create", "token", service_account, "--namespace", namespace, "--duration", "1h").strip()
    admin = json.loads(kubectl("config", "view", "--minify", "--raw", "--output", "json"))
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": "local", "user": service_account, "namespace": namespace}}
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def operator_as(kubeconfig: Path, namespaces: list[str], log_path: Path) -> Iterator[Path]:
    """`modelship run` for the listed namespaces only (never cluster-wide: other tests share the
    cluster), authenticated by `kubeconfig`. Yields the log's path; stops the process on exit."""
    assert namespaces, "an operator in tests must watch named namespaces"
    args = ["modelship", "run", "--metrics-port", "0", "--liveness-port", "0"]
    for ns in namespaces:
        args += ["--namespace", ns]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**ENV, "KUBECONFIG": str(kubeconfig)}
        )
    try:
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
