"""Test support for the local cluster: kubectl, per-test namespaces, and the operator as a process.

Nothing here mocks the API: tests talk to the real apiserver that `hack/cluster.sh up` runs,
through kubectl (as a user would) and the operator's own console script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class ClusterUnavailable(RuntimeError):
    pass


def cluster_env() -> dict[str, str]:
    """Environment for kubectl and the operator: the pinned tools first on PATH, KUBECONFIG and
    MODELSHIP_PROMETHEUS_URL set."""
    out = "".join(
        subprocess.run([str(REPO / script), "env"], capture_output=True, text=True, check=True).stdout
        for script in ("hack/cluster.sh", "hack/prometheus.sh")
    )
    env = dict(os.environ)
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip("'").replace('"$PATH"', env.get("PATH", "")).replace("'", "")
        env[key] = value
    return env


ENV = cluster_env()


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, env=ENV, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc.stdout


def kubectl_result(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, env=ENV, timeout=60
    )


def get_json(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json"))


def apply(namespace: str, *docs: dict[str, Any]) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs))


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Polls `probe` until it returns something truthy; fails the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except subprocess.CalledProcessError as exc:
            last = exc.stderr
        if last:
            return cast(T, last)
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def ensure_cluster() -> None:
    """Starts or reuses the local cluster and installs the CRD. Fails loudly: there is no
    skip for a missing cluster."""
    if shutil.which("kubectl", path=ENV["PATH"]) is None:
        raise ClusterUnavailable("kubectl is not built; run `make tools`")
    proc = subprocess.run([str(REPO / "hack/cluster.sh"), "up"], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise ClusterUnavailable(f"the local cluster did not start:\n{proc.stdout}\n{proc.stderr}")
    proc = subprocess.run([str(REPO / "hack/prometheus.sh"), "up"], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise ClusterUnavailable(f"the local Prometheus did not start:\n{proc.stdout}\n{proc.stderr}")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modelship.dev", "--timeout=60s")


def new_namespace(prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prefix.lower())[:40].strip("-") or "t"
    name = f"{slug}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    # Pods need the namespace's default ServiceAccount, which the controller-manager adds.
    wait_for("the default ServiceAccount", lambda: kubectl("-n", name, "get", "sa", "default", check=False))
    return name


def delete_namespace(name: str) -> None:
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class OperatorProcess:
    """`modelship run` as a user runs it, watching only the test's namespace (tests run side by
    side, each with its own operator)."""

    namespaces: list[str]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0

    def start(self) -> OperatorProcess:
        ports = [] if "--metrics-port" in self.extra_args else ["--metrics-port", "0", "--liveness-port", "0"]
        args = ["modelship", "run", *ports, *self.extra_args]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, no chance to finish what it was doing."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def with_metrics(self) -> OperatorProcess:
        """Serve /metrics on a free port from the next start: the signal that a pass happened."""
        self.metrics_port = _free_port()
        self.extra_args = [*self.extra_args, "--metrics-port", str(self.metrics_port)]
        self.extra_args += ["--liveness-port", str(_free_port())]
        return self

    def reconciled(self) -> int:
        """Passes this process (since its last start) finished without error, by its /metrics;
        0 while it is not serving them yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return 0
        found = re.search(r'^modelship_reconciles_total\{result="ok"\} ([0-9.e+]+)$', text, re.MULTILINE)
        return int(float(found.group(1))) if found else 0

    def wait_reconciled(self, what: str, at_least: int = 1, timeout: float = 60) -> None:
        """Waits until this process has finished `at_least` passes (every object it watches
        gets one at start-up, so 1 per object means it has looked at each)."""
        wait_for(f"the operator to reconcile {what}", lambda: self.reconciled() >= at_least, timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def model_deployment(
    name: str,
    version: str,
    replicas: int = 2,
    *,
    steps: list[dict[str, Any]] | None = None,
    pod_labels: dict[str, str] | None = None,
    deadline: int = 60,
    **spec_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"version": version, "uri": f"https://models.example.com/{name}/{version}/model.skops"},
        "replicas": replicas,
        "rollout": {"progressDeadlineSeconds": deadline},
        **spec_extra,
    }
    if steps is not None:
        spec["rollout"]["canary"] = {"steps": steps}
    if pod_labels:
        spec["serving"] = {"podLabels": pod_labels}
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def mdep_status(namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = get_json("-n", namespace, "mdep", name).get("status") or {}
    return status


@pytest.fixture(scope="session")
def cluster() -> None:
    ensure_cluster()


@pytest.fixture
def namespace(cluster: None, request: pytest.FixtureRequest) -> Iterator[str]:
    name = new_namespace(request.node.name.removeprefix("test_"))
    yield name
    delete_namespace(name)


@pytest.fixture
def operator(namespace: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    op = OperatorProcess([namespace], tmp_path / "operator.log").start()
    yield op
    op.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"--- operator log ({namespace}) ---\n{op.log()[-6000:]}")
