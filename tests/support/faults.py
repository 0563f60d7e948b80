"""Control-plane faults for tests and by hand (`hack/faults.sh`): kill, restart and freeze the
processes of a local cluster that the fault tests own.

Restarting or freezing an apiserver or etcd would break every other test that runs at the same
time, so these faults only ever hit a second, kwok-only cluster (`modelship-faults`, its own ports,
no real node), started by `hack/cluster.sh up` with MODELSHIP_CLUSTER_NAME set. Faults that touch
only one operator's traffic (drop, hold, 429, 409) live in `fault_proxy.py` and may run anywhere.
The cluster's supervisor (hack/supervise.py) is what brings a killed process back, as a kubelet
would.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.k8s import REPO, OperatorProcess, wait_for

FAULTS_CLUSTER = "modelship-faults"
FAULTS_PORT_BASE = 32740  # 32741..32746; the default cluster's kwokctl-picked ports are higher
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def _cluster_script_env(name: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MODELSHIP_CLUSTER_NAME"] = name
    if name == FAULTS_CLUSTER:
        env["MODELSHIP_REAL_NODE"] = "0"
        env["MODELSHIP_CLUSTER_PORT_BASE"] = str(FAULTS_PORT_BASE)
    return env


@dataclass(frozen=True)
class LocalCluster:
    name: str
    env: dict[str, str]  # PATH and KUBECONFIG for kubectl and the operator

    @property
    def kubeconfig(self) -> Path:
        return Path(self.env["KUBECONFIG"])

    @property
    def directory(self) -> Path:
        return self.kubeconfig.parent

    @property
    def server(self) -> str:
        return self.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30) -> str:
        proc = subprocess.run(
            ["kubectl", *args], input=input, capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc.stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def new_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        # Pods need the namespace's default ServiceAccount, which the controller-manager adds.
        wait_for("the default ServiceAccount", lambda: self.kubectl("-n", name, "get", "sa", "default"))
        return name

    def answers(self) -> bool:
        try:
            return self.kubectl("get", "--raw", "/readyz", check=False, timeout=5).strip() == "ok"
        except subprocess.TimeoutExpired:
            return False

    # -- processes -------------------------------------------------------------------------------
    def pid(self, component: str) -> int:
        """The pid kwokctl (or the supervisor) recorded; 0 while the file is being rewritten."""
        try:
            return int((self.directory / "pids" / f"{component}.pid").read_text().strip())
        except (OSError, ValueError):
            return 0

    def running(self, component: str) -> bool:
        try:
            stat = Path(f"/proc/{self.pid(component)}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")

    def kill(self, component: str) -> int:
        """SIGKILL, as an OOM kill or a crashed node would; returns the pid that was killed."""
        pid = self.pid(component)
        os.kill(pid, signal.SIGKILL)
        return pid

    def restart(self, component: str, timeout: float = 60) -> None:
        """Kills `component` and waits until the supervisor has started a new one and the apiserver
        answers again."""
        old = self.kill(component)
        wait_for(
            f"{component} restarted by the supervisor",
            lambda: self.pid(component) != old and self.running(component),
            timeout,
        )
        wait_for("the apiserver to answer", self.answers, timeout)

    @contextlib.contextmanager
    def frozen(self, component: str) -> Iterator[None]:
        """SIGSTOP for as long as the block runs (a disk that stalls, a VM that is paused), then SIGCONT."""
        pid = self.pid(component)
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


def cluster_up(name: str = FAULTS_CLUSTER) -> LocalCluster:
    """Starts (or reuses) the named cluster and installs the CRD. Test workers may call this at
    the same time: one `up` at a time per cluster."""
    script_env = _cluster_script_env(name)
    lock_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelship-{name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            [str(REPO / "hack/cluster.sh"), "up"], capture_output=True, text=True, env=script_env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cluster {name} did not start:\n{proc.stderr[-4000:]}")
    cluster = LocalCluster(name, _env_of(name))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))

    def established() -> bool:
        # Read, not `kubectl wait`: on a cluster just started, the wait itself could fail (NotFound
        # before the apply is visible to it) or outlast kubectl()'s own 30 s timeout.
        crd = cluster.get_json("crd", "modeldeployments.modelship.dev")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for("the ModelDeployment CRD Established", established, 60)
    return cluster


@contextlib.contextmanager
def exclusive(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The cluster for one user at a time, across processes (pytest workers, `make soak`): its
    faults stop the apiserver for everybody on it, so a neighbour's run would fail."""
    lock_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelship-{cluster.name}.exclusive.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield cluster


def _env_of(name: str) -> dict[str, str]:
    out = subprocess.run(
        [str(REPO / "hack/cluster.sh"), "env"],
        capture_output=True,
        text=True,
        check=True,
        env=_cluster_script_env(name),
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'").replace('"$PATH"', env.get("PATH", "")).replace("'", "")
    return env


@dataclass
class OperatorOn(OperatorProcess):
    """`modelship run` against a given kubeconfig (another cluster, or a proxy), with its
    metrics on, and extra flags."""

    env: dict[str, str] | None = None

    def start(self) -> OperatorOn:
        assert self.env is not None
        if not self.metrics_port:
            self.with_metrics()
        args = ["modelship", "run", *self.extra_args]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def liveness_port(self) -> int:
        return int(self.extra_args[self.extra_args.index("--liveness-port") + 1])


def wait_reconciled_after(op: OperatorProcess, what: str, timeout: float) -> float:
    """Waits for one more finished pass than the operator had when called; returns how long it took."""
    start, before = time.monotonic(), op.reconciled()
    wait_for(f"a reconcile after {what}", lambda: op.reconciled() > before, timeout, interval=0.2)
    return time.monotonic() - start
