"""`make bench-operator`: Modelship's operator and Argo Rollouts' controller on the same work.

On the local cluster's kwok nodes (simulated pods that turn Ready at once), each controller gets
BENCH_N objects of BENCH_REPLICAS replicas spread over BENCH_NAMESPACES namespaces, beside
BENCH_UNRELATED pods that are none of its business, and runs three phases, timed from the apply
to the moment every object reports Healthy on the new version:

  create   apply N objects of version 1
  switch   move all of them to version 2 (no steps: a full-size new version, then the switch)
  canary   move all of them to version 3 through two setWeight steps (replica ratio, no router)

then sits 60 s at rest. Each controller talks to the apiserver through its own counting proxy
(tests/support/counting_proxy.py), which gives its requests by verb; its CPU seconds and peak RSS
come from /proc. With BENCH_PROFILE=1, py-spy samples Modelship's operator for its whole run and
writes a speedscope profile (https://www.speedscope.app) beside the controllers' logs. The two run one after the other, on the same nodes, with the same unrelated pods.
Everything created lives in namespaces named BENCH_PREFIX-* and nodes named BENCH_PREFIX-node-*
(tainted, so no one else's pods land there), and is deleted at the end, as are Argo Rollouts' CRDs.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.support.counting_proxy import ApiProxy  # noqa: E402

N = int(os.environ.get("BENCH_N", "1000"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "2"))
NAMESPACES = int(os.environ.get("BENCH_NAMESPACES", "4"))
UNRELATED = int(os.environ.get("BENCH_UNRELATED", "5000"))
PREFIX = os.environ.get("BENCH_PREFIX", "bench")
PHASE_TIMEOUT = float(os.environ.get("BENCH_PHASE_TIMEOUT", "1800"))
REST_SECONDS = int(os.environ.get("BENCH_REST_SECONDS", "60"))
PROXY = os.environ.get("BENCH_PROXY", "1") != "0"
ONLY = os.environ.get("BENCH_ONLY", "")  # "modelship" or "argo-rollouts": run one side only
PROFILE = os.environ.get("BENCH_PROFILE", "0") != "0"
# Samples a second: at py-spy's default 100 the sampler used more CPU than the operator it sampled.
PROFILE_RATE = os.environ.get("BENCH_PROFILE_RATE", "20")
STEPS = [{"setWeight": 30}, {"setWeight": 60}]
TAINT = {"key": f"{PREFIX}.modelship.dev/only", "operator": "Exists", "effect": "NoSchedule"}
NODE_PODS = 1100
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:4])}: {proc.stderr.strip()[:500]}")
    return proc.stdout


def apply(docs: Iterable[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == 250:
            kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(batch))
            batch = []
    if batch:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(batch))


def items(resource: str, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(kubectl("-n", namespace, "get", resource, "-o", "json"))["items"]
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, done: Callable[[], bool], timeout: float = PHASE_TIMEOUT) -> float:
    """Seconds until `done()` holds (polled every 2 s); raises after `timeout`."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(2)
    return time.monotonic() - start


# -- the cluster around the run ------------------------------------------------------------------
def namespaces(side: str) -> list[str]:
    return [f"{PREFIX}-{side}-{i}" for i in range(NAMESPACES)]


def spread(side: str) -> list[tuple[str, str]]:
    """(namespace, name) of every object, round-robin over the side's namespaces."""
    spaces = namespaces(side)
    return [(spaces[i % len(spaces)], f"m{i}") for i in range(N)]


def make_nodes() -> None:
    pods = 2 * N * REPLICAS * 2 + UNRELATED  # both sides, a surge's worth each, the unrelated ones
    count = math.ceil(pods / NODE_PODS) + 1
    log(f"adding {count} kwok nodes ({NODE_PODS} pods each), tainted for the benchmark only")
    apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"{PREFIX}-node-{i}",
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", f"{PREFIX}.modelship.dev/node": "true"},
            },
            "spec": {"taints": [{k: TAINT[k] for k in ("key", "effect")}]},
            "status": {
                "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": str(NODE_PODS)},
                "capacity": {"cpu": "1000", "memory": "4Ti", "pods": str(NODE_PODS)},
                "nodeInfo": {"architecture": "amd64", "kubeletVersion": "fake", "operatingSystem": "linux"},
            },
        }
        for i in range(count)
    )


def pod_placement() -> dict[str, Any]:
    return {"nodeSelector": {f"{PREFIX}.modelship.dev/node": "true"}, "tolerations": [TAINT]}


def make_unrelated_pods() -> None:
    ns = f"{PREFIX}-unrelated"
    kubectl("create", "namespace", ns, check=False)
    per = 1000
    deployments = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"noise-{i}", "namespace": ns},
            "spec": {
                "replicas": min(per, UNRELATED - i * per),
                "selector": {"matchLabels": {"app": f"noise-{i}"}},
                "template": {
                    "metadata": {"labels": {"app": f"noise-{i}"}},
                    "spec": {**pod_placement(), "containers": [{"name": "c", "image": "noise"}]},
                },
            },
        }
        for i in range(math.ceil(UNRELATED / per))
    ]
    apply(deployments)

    def created() -> bool:
        return (
            sum(int((d.get("status") or {}).get("replicas", 0)) for d in items("deployments", ns))
            >= UNRELATED
        )

    log(f"{UNRELATED} unrelated pods created in {wait_until('unrelated pods', created):.0f}s")


def leftover_namespaces() -> list[str]:
    names = kubectl("get", "namespaces", "-o", "name").split()
    return [n for n in names if n.removeprefix("namespace/").startswith(f"{PREFIX}-")]


def cleanup() -> None:
    log("cleaning up: namespaces, nodes and Argo Rollouts' CRDs")
    spaces = leftover_namespaces()
    if spaces:
        kubectl("delete", *spaces, "--wait=false", check=False)
    # Pods whose kwok node is deleted under them are left to the controller-manager's pod garbage
    # collector, which took over 6 minutes for 7000 of them and held the next run's start.
    for space in spaces:
        ns = space.removeprefix("namespace/")
        kubectl(
            "-n", ns, "delete", "pods", "--all", "--force", "--grace-period=0", "--wait=false", check=False
        )
    kubectl("delete", "nodes", "-l", f"{PREFIX}.modelship.dev/node=true", "--wait=false", check=False)
    crds = subprocess.run(
        [str(REPO / "hack/build-argo-rollouts.sh"), "--crds"], capture_output=True, text=True
    ).stdout.strip()
    if crds:
        kubectl("delete", "-k", crds, "--wait=false", "--ignore-not-found", check=False)


# -- one controller under measurement ---------------------------------------------------------------
@dataclass
class Side:
    name: str
    phases: dict[str, float] = field(default_factory=dict)
    verbs: Counter[str] = field(default_factory=Counter)
    at_rest: int = 0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    reconciles: int | None = None
    throttled: float | None = None


class Process:
    def __init__(
        self, args: list[str], env: dict[str, str], log_path: Path, profile: Path | None = None
    ) -> None:
        self.log_path = log_path
        self.proc = subprocess.Popen(args, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
        self.profiler: subprocess.Popen[bytes] | None = None
        if profile:
            # Attached rather than as a parent, so /proc still measures the operator alone; nonblocking,
            # so the sampler never pauses it (a paused operator would look slower than it is).
            spy = [str(REPO / ".venv/bin/py-spy"), "record", "--pid", str(self.proc.pid), "--nonblocking"]
            spy += ["--rate", PROFILE_RATE]
            spy += ["--format", "speedscope", "--output", str(profile)]
            self.profiler = subprocess.Popen(
                spy, stdout=subprocess.DEVNULL, stderr=log_path.with_suffix(".py-spy.log").open("wb")
            )
            self.profile = profile

    def usage(self) -> tuple[float, float]:
        """(CPU seconds, peak RSS MiB) so far."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{self.proc.pid}/status").read_text())
        return cpu, (int(hwm.group(1)) / 1024 if hwm else 0.0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.profiler:
            # py-spy writes its file when the process it samples exits.
            try:
                self.profiler.wait(60)
            except subprocess.TimeoutExpired:
                self.profiler.send_signal(signal.SIGINT)
                self.profiler.wait(30)
            log(f"profile of {self.log_path.stem}: {self.profile} (open it in https://www.speedscope.app)")


def run_side(
    side: Side,
    start: Callable[[Path], Process],
    manifests: Callable[[str, str, str, list[dict[str, Any]] | None], dict[str, Any]],
    healthy_on: Callable[[str, str], int],
    workdir: Path,
) -> None:
    """Runs the three phases and the rest period for one controller; fills `side`."""
    for ns in namespaces(side.name):
        kubectl("create", "namespace", ns, check=False)
    proxy = ApiProxy(Path(os.environ["KUBECONFIG"])).start()
    kubeconfig = proxy.kubeconfig(workdir / f"{side.name}-kubeconfig.yaml")
    if not PROXY:  # a check on the proxy's own cost: times and CPU only, no request counts
        kubeconfig = Path(os.environ["KUBECONFIG"])
    throttled_before = controller_manager_throttled()
    process = start(kubeconfig)
    try:
        objects = spread(side.name)
        for phase, version, steps in (("create", "1", None), ("switch", "2", None), ("canary", "3", STEPS)):
            log(f"{side.name}: {phase}: applying {N} objects of version {version}")
            began = time.monotonic()
            apply(manifests(ns, name, version, steps) for ns, name in objects)

            def all_healthy(version: str = version) -> bool:
                done = sum(healthy_on(ns, version) for ns in namespaces(side.name))
                return done >= N

            wait_until(f"{side.name} {phase}", all_healthy)
            side.phases[phase] = time.monotonic() - began
            log(f"{side.name}: {phase}: all {N} Healthy on {version} after {side.phases[phase]:.1f}s")
        throttled_after = controller_manager_throttled()
        if throttled_before is not None and throttled_after is not None:
            side.throttled = throttled_after - throttled_before
        mark = proxy.mark()
        time.sleep(REST_SECONDS)  # a measurement window, not a synchronisation
        side.at_rest = len(proxy.since(mark))
        side.verbs = proxy.verbs()
        side.cpu_seconds, side.peak_rss_mib = process.usage()
        side.reconciles = reconciles_of(side)
    finally:
        process.stop()
        proxy.stop()


def controller_manager_throttled() -> float | None:
    """Seconds the kube-controller-manager's requests have waited, in all, for its own client-side
    rate limiter (--kube-api-qps, 20 a second unless set): it makes every pod of a ReplicaSet, for
    either controller, so when it waits, both wait."""
    cluster = Path(os.environ["KUBECONFIG"]).parent
    try:
        pid = (cluster / "pids" / "kube-controller-manager.pid").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        port = next(a.split("=", 1)[1] for a in args if a.startswith("--secure-port="))
        # Its /metrics is open to anonymous reads (--authorization-always-allow-paths); the
        # certificate is the cluster's own.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        url = f"https://127.0.0.1:{port}/metrics"
        text = urllib.request.urlopen(url, context=context, timeout=10).read().decode()
    except (OSError, StopIteration):
        return None
    sums = re.findall(r"^rest_client_rate_limiter_duration_seconds_sum\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in sums)


_metrics_ports: dict[str, int] = {}


def reconciles_of(side: Side) -> int | None:
    port = _metrics_ports.get(side.name)
    if not port:
        return None
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.findall(r'^modelship_reconciles_total\{result="\w+"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return int(sum(float(v) for v in found))


# -- Modelship ------------------------------------------------------------------------------------
def modelship_start(kubeconfig: Path, workdir: Path) -> Process:
    port = _metrics_ports["modelship"] = free_port()
    args = ["modelship", "run", "--metrics-port", str(port), "--liveness-port", "0", "--log-level", "WARNING"]
    for ns in namespaces("modelship"):
        args += ["--namespace", ns]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return Process(
        args, env, workdir / "modelship.log", workdir / "modelship.speedscope.json" if PROFILE else None
    )


def modelship_manifest(
    ns: str, name: str, version: str, steps: list[dict[str, Any]] | None
) -> dict[str, Any]:
    rollout: dict[str, Any] = {"progressDeadlineSeconds": 3600}
    if steps:
        rollout["canary"] = {"steps": steps}
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {"version": version, "uri": f"https://models.example.com/{name}/{version}/model.skops"},
            "replicas": REPLICAS,
            "rollout": rollout,
            "serving": pod_placement(),
        },
    }


def modelship_healthy(ns: str, version: str) -> int:
    return sum(
        1
        for md in items("modeldeployments", ns)
        if (s := md.get("status") or {}).get("phase") == "Healthy"
        and s.get("stableVersion") == version
        and s.get("observedGeneration") == md["metadata"]["generation"]
    )


# -- Argo Rollouts --------------------------------------------------------------------------------
def rollouts_start(kubeconfig: Path, workdir: Path) -> Process:
    bin_dir = subprocess.run(
        [str(REPO / "hack/build-argo-rollouts.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    args = [
        f"{bin_dir}/rollouts-controller",
        "--kubeconfig",
        str(kubeconfig),
        "--leader-elect=false",
        "--metricsPort",
        str(free_port()),
        "--healthzPort",
        str(free_port()),
        "--loglevel",
        "warn",
    ]
    return Process(args, dict(os.environ), workdir / "argo-rollouts.log")


def rollout_manifest(ns: str, name: str, version: str, steps: list[dict[str, Any]] | None) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "progressDeadlineSeconds": 3600,
            "strategy": {"canary": {"steps": steps or []}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"bench.modelship.dev/version": version}},
                "spec": {**pod_placement(), "containers": [{"name": "server", "image": f"model:{version}"}]},
            },
        },
    }


def rollout_healthy(ns: str, version: str) -> int:
    count = 0
    for ro in items("rollouts.argoproj.io", ns):
        s = ro.get("status") or {}
        template = ro["spec"]["template"]["metadata"]["annotations"]["bench.modelship.dev/version"]
        if (
            template == version
            and s.get("phase") == "Healthy"
            and str(s.get("observedGeneration")) == str(ro["metadata"]["generation"])
            and s.get("stableRS")
            and s.get("stableRS") == s.get("currentPodHash")
        ):
            count += 1
    return count


def install_rollouts_crds() -> None:
    crds = subprocess.run(
        [str(REPO / "hack/build-argo-rollouts.sh"), "--crds"], capture_output=True, text=True, check=True
    ).stdout.strip()
    kubectl("apply", "--server-side", "--force-conflicts", "-k", crds)
    established = '{.status.conditions[?(@.type=="Established")].status}'

    def ready() -> bool:
        return (
            kubectl("get", "crd/rollouts.argoproj.io", "-o", f"jsonpath={established}", check=False) == "True"
        )

    wait_until("Argo Rollouts' CRD established", ready, timeout=60)


# -- the report -----------------------------------------------------------------------------------
def table(sides: list[Side]) -> str:
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, values: list[float | int | None], fmt: str = "{:.1f}") -> None:
        cells = ["-" if v is None else fmt.format(v) for v in values]
        if len(values) == 2 and all(isinstance(v, int | float) and v for v in values):
            cells.append(f"{values[0] / values[1]:.2f}")  # type: ignore[operator]
        rows.append((label, cells))

    for phase in ("create", "switch", "canary"):
        row(f"{phase}: apply -> all Healthy (s)", [s.phases.get(phase) for s in sides])
    row("CPU seconds (whole run)", [s.cpu_seconds for s in sides])
    row("peak RSS (MiB)", [s.peak_rss_mib for s in sides])
    row("reconciles", [s.reconciles for s in sides], "{:.0f}")
    row("kube-controller-manager: s waited on its QPS limit", [s.throttled for s in sides], "{:.0f}")
    for s in sides:
        if s.reconciles:
            rows.append((f"{s.name}: CPU ms per reconcile", [f"{1000 * s.cpu_seconds / s.reconciles:.2f}"]))
    verbs = sorted({v for s in sides for v in s.verbs})
    for verb in verbs:
        row(f"requests: {verb}", [s.verbs.get(verb, 0) for s in sides], "{:.0f}")
    row("requests: total", [sum(s.verbs.values()) for s in sides], "{:.0f}")
    row(f"requests at rest ({REST_SECONDS} s)", [s.at_rest for s in sides], "{:.0f}")
    header = ["metric", *[s.name for s in sides], *(["ratio"] if len(sides) == 2 else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return "\n".join(lines)


def main() -> None:
    log(
        f"N={N} replicas={REPLICAS} namespaces={NAMESPACES} unrelated pods={UNRELATED}; "
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    sides: list[Side] = []
    try:
        # A previous run's namespaces may still be terminating; objects cannot be made in them.
        wait_until("the last run's namespaces gone", lambda: not leftover_namespaces(), timeout=600)
        make_nodes()
        make_unrelated_pods()
        if ONLY in ("", "modelship"):
            side = Side("modelship")
            run_side(
                side, lambda k: modelship_start(k, workdir), modelship_manifest, modelship_healthy, workdir
            )
            sides.append(side)
        if ONLY in ("", "argo-rollouts"):
            install_rollouts_crds()
            side = Side("argo-rollouts")
            run_side(side, lambda k: rollouts_start(k, workdir), rollout_manifest, rollout_healthy, workdir)
            sides.append(side)
    finally:
        cleanup()
        log(f"controller logs in {workdir}")
    print(table(sides))


if __name__ == "__main__":
    # SIGTERM (a timeout, a Ctrl-C'd make) still runs the clean-up in main's finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
