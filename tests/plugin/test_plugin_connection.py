"""How `kubectl modelship` finds its object: kubeconfig, context, namespace, and the errors a user
sees when something is missing. No operator needed: these are about reading, not acting."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.k8s import ENV, apply, kubectl, model_deployment


def plugin(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "modelship", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_namespace_comes_from_the_chosen_context_of_the_given_kubeconfig(
    namespace: str, tmp_path: Path
) -> None:
    # Given a ModelDeployment, and a kubeconfig whose context "modelship-test" defaults to its namespace
    apply(namespace, model_deployment("iris", "v1"))
    config = tmp_path / "kubeconfig"
    config.write_text(kubectl("config", "view", "--raw"))
    current = kubectl("config", "current-context", "--kubeconfig", str(config)).strip()
    cluster = kubectl(
        "config",
        "view",
        "--raw",
        "--kubeconfig",
        str(config),
        "-o",
        f"jsonpath={{.contexts[?(@.name=='{current}')].context.cluster}}",
    )
    user = kubectl(
        "config",
        "view",
        "--raw",
        "--kubeconfig",
        str(config),
        "-o",
        f"jsonpath={{.contexts[?(@.name=='{current}')].context.user}}",
    )
    kubectl(
        "config",
        "set-context",
        "modelship-test",
        "--kubeconfig",
        str(config),
        f"--cluster={cluster}",
        f"--user={user}",
        f"--namespace={namespace}",
    )
    # When the plugin runs with that kubeconfig and context, no -n, and KUBECONFIG pointing nowhere
    env = {**ENV, "KUBECONFIG": str(tmp_path / "absent")}
    proc = plugin("status", "iris", "--kubeconfig", str(config), "--context", "modelship-test", env=env)
    # Then it finds the object in the context's namespace
    assert proc.returncode == 0, proc.stderr
    assert f"Namespace:     {namespace}" in proc.stdout
    assert "Spec version:  v1" in proc.stdout


def test_kubeconfig_from_the_environment_is_used_like_kubectl_does(namespace: str) -> None:
    # Given a ModelDeployment, and only KUBECONFIG saying where the cluster is
    apply(namespace, model_deployment("iris", "v1"))
    # When the plugin runs without --kubeconfig
    proc = plugin("history", "iris", "--namespace", namespace)
    # Then it reaches the cluster (the object has no revisions yet: no operator runs here)
    assert proc.returncode == 0, proc.stderr
    assert "no recorded revisions" in proc.stdout


def test_a_missing_object_or_namespace_is_a_one_line_error(namespace: str) -> None:
    # When the plugin is asked about an object or a namespace that does not exist
    no_object = plugin("status", "ghost", "-n", namespace)
    no_namespace = plugin("promote", "ghost", "-n", f"{namespace}-absent")
    # Then each says which, on one line, and exits non-zero
    assert (no_object.returncode, no_namespace.returncode) == (1, 1)
    assert no_object.stderr == (
        f'error: modeldeployments.modelship.dev "ghost" not found in namespace "{namespace}"\n'
    )
    assert no_namespace.stderr == f'error: namespace "{namespace}-absent" not found\n'
