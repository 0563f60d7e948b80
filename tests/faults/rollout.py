"""One canary rollout, watched for the invariants every fault test asserts.

The rollout: version 1 on 10 replicas (kwok pods), then version 2 with steps 20%, a timed pause,
50% and a pause that waits for a promote. A fault test lets it reach a phase it picks from status,
injects its fault, and then finishes the rollout; `Rollout` samples the Ready pods meanwhile and
answers the questions afterwards: same final state as without a fault, no step ran twice, stable
never had fewer Ready pods than it needed, and how many writes the operator sent.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster, OperatorOn
from tests.support.k8s import model_deployment, wait_for

REPLICAS = 10
SLOW_READY = {"stage.modelship.dev/slow-ready": "true"}
STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"duration": "6s"}},
    {"setWeight": 50},
    {"pause": {}},
]
# Writes (POST/PUT/PATCH/DELETE) the operator may send for this whole rollout, faults included.
# A fault-free run sends about WRITES_FAULT_FREE (40 of them status patches: the message counts the
# canary's Ready pods one by one); a retry loop or a re-run step would need many more.
WRITES_FAULT_FREE = 61
WRITE_BUDGET = 2 * WRITES_FAULT_FREE
# Seconds within which the operator must act again once a fault has ended.
RECOVERY_SECONDS = 30


@dataclass
class StepClocks:
    """Every version of the object's status the apiserver stores, seen through a watch of the test's
    own (straight to the apiserver, not through the operator's proxy): when each step of each
    rollout began. A step whose clock restarted (begun again from a stale view, say) shows as a
    second start time; the Events cannot show that, as the pass that posts a step's Event may be the
    second one."""

    cluster: LocalCluster
    namespace: str
    name: str
    starts: dict[tuple[str, str], set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    _stop: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None

    FIELDS = "{.status.rollout.version} {.status.currentStepIndex} {.status.stepStartedAt}"

    def start(self) -> StepClocks:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.kill()
        if self._thread is not None:
            self._thread.join(10)

    def restarted(self) -> dict[tuple[str, str], set[str]]:
        return {step: times for step, times in self.starts.items() if len(times) > 1}

    def _watch(self) -> None:
        # A watch that ends (the apiserver restarted under a fault test) is opened again; its first
        # answer is the object as stored, so no start is missed unless it lasted less than that gap.
        while not self._stop.is_set():
            jsonpath = f'jsonpath={self.FIELDS}{{"\\n"}}'
            self._proc = subprocess.Popen(
                ["kubectl", "-n", self.namespace, "get", "mdep", self.name, "--watch", "-o", jsonpath],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=self.cluster.env,
            )
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                fields = line.split()
                if len(fields) == 3:
                    version, index, started = fields
                    self.starts[(version, index)].add(started)
            self._proc.wait()
            self._stop.wait(0.5)


@dataclass
class Rollout:
    cluster: LocalCluster
    namespace: str
    operator: OperatorOn
    proxy: FaultProxy
    name: str = "iris"
    started_at: float = 0.0
    lowest_ready: int | None = None
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None
    clocks: StepClocks | None = None

    # -- driving ----------------------------------------------------------------------------------
    def apply(self, version: str) -> None:
        # The canary's pods turn Ready 4 s late (a kwok stage), so each weight step lasts long
        # enough for a test to act while status shows it in progress.
        labels = SLOW_READY if version != "1" else None
        manifest = model_deployment(
            self.name, version, replicas=REPLICAS, steps=STEPS, deadline=120, pod_labels=labels
        )
        self.cluster.kubectl("-n", self.namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))

    def status(self) -> dict[str, Any]:
        obj = self.cluster.get_json("-n", self.namespace, "mdep", self.name)
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def status_has(self, **fields: Any) -> dict[str, Any] | None:
        status = self.status()
        return status if all(status.get(k) == v for k, v in fields.items()) else None

    def wait_status(self, what: str, timeout: float = 90, **fields: Any) -> dict[str, Any]:
        return wait_for(what, lambda: self.status_has(**fields), timeout)

    def wait_step(self, what: str, index: int, timeout: float = 90, **fields: Any) -> dict[str, Any]:
        """Status at step `index`, and that step's Event stored. The operator posts a step's Event
        after the status that enters it; a fault injected between the two would lose the Event (a
        courtesy the operator does not retry) and look like a step that never ran."""
        status = self.wait_status(what, timeout, currentStepIndex=index, **fields)
        wait_for(f"the Event of {what}", lambda: len(self.step_starts()) >= index + 1, 30)
        return status

    def begin(self) -> None:
        """Version 1 Healthy on 10 Ready pods, then the canary of version 2 begins."""
        self.apply("1")
        self.wait_status("version 1 Healthy", phase="Healthy", stableVersion="1")
        wait_for("10 Ready pods of version 1", lambda: self.ready_pods() == {"1": REPLICAS}, 60)
        self.started_at = time.monotonic()
        self.clocks = StepClocks(self.cluster, self.namespace, self.name).start()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self.apply("2")

    def promote(self, token: str = "p1") -> None:
        self.cluster.kubectl(
            "-n",
            self.namespace,
            "annotate",
            "--overwrite",
            "mdep",
            self.name,
            f"modelship.dev/promote={token}",
        )

    def finish(self, timeout: float = 120, promoted: bool = False) -> dict[str, Any]:
        """From wherever it is: to the pause that waits for a promote, promote, Healthy on 2."""
        if not promoted:
            self.wait_status("waiting for a promote", timeout, phase="Paused", currentStepIndex=3)
            self.promote()
        status = self.wait_status("version 2 Healthy", timeout, phase="Healthy", stableVersion="2")
        wait_for("10 Ready pods of version 2", lambda: self.ready_pods() == {"2": REPLICAS}, 60)
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(10)
        if self.clocks is not None:
            self.clocks.stop()
        return status

    # -- observing --------------------------------------------------------------------------------
    def ready_pods(self) -> dict[str, int]:
        pods = self.cluster.get_json(
            "-n", self.namespace, "pods", "-l", f"modelship.dev/model-deployment={self.name}"
        )["items"]
        counts: dict[str, int] = collections.Counter()
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                counts[pod["metadata"]["labels"]["modelship.dev/version"]] += 1
        return dict(counts)

    def _sample(self) -> None:
        # Reads that fail while the apiserver is down say nothing about the pods: skip them.
        while not self._stop.is_set():
            try:
                total = sum(self.ready_pods().values())
            except Exception:
                time.sleep(0.5)
                continue
            self.samples += 1
            self.lowest_ready = total if self.lowest_ready is None else min(self.lowest_ready, total)
            time.sleep(0.3)

    def step_starts(self) -> collections.Counter[str]:
        """How many times each step was entered, by the Events: the canary's start (RolloutStarted,
        which also enters step 1) and each later StepStarted. Once each, whatever happened."""
        events = self.cluster.get_json(
            "-n", self.namespace, "events", "--field-selector", f"involvedObject.name={self.name}"
        )["items"]
        return collections.Counter(
            e["message"]
            for e in events
            if e["reason"] == "StepStarted"
            or (e["reason"] == "RolloutStarted" and "version 2" in e["message"])
        )

    def writes(self) -> int:
        return len(self.proxy.writes_between(self.started_at, time.monotonic()))

    def write_kinds(self) -> collections.Counter[str]:
        """The writes by method, resource and answer: what a storm would be made of."""
        kinds: collections.Counter[str] = collections.Counter()
        for r in self.proxy.writes_between(self.started_at, time.monotonic()):
            parts = r.path.split("?")[0].split("/")
            after = parts[parts.index("namespaces") + 2 :] if "namespaces" in parts else parts[-1:]
            kinds[f"{r.method} {'/'.join(p for p in after[:1] + after[2:])} {r.answered or 'sent'}"] += 1
        return kinds


def assert_converged_once(rollout: Rollout, final: dict[str, Any], events_lost: int = 0) -> None:
    """The invariants of every fault test, each with its own message. `events_lost`: step Events
    the fault may cost (the pass that entered the step failed after its status write landed, and
    an Event is a courtesy the operator does not retry); status must still show each step once."""
    assert [(r["version"], r["outcome"]) for r in final["revisions"]] == [
        ("1", "Superseded"),
        ("2", "Promoted"),
    ], final["revisions"]
    starts = rollout.step_starts()
    assert len(STEPS) - events_lost <= len(starts) <= len(STEPS) and set(starts.values()) == {1}, starts
    assert rollout.clocks is not None
    assert not rollout.clocks.restarted(), f"steps begun again: {rollout.clocks.restarted()}"
    assert rollout.samples > 0 and rollout.lowest_ready is not None
    assert rollout.lowest_ready >= REPLICAS, f"Ready pods fell to {rollout.lowest_ready}"
    assert rollout.operator.alive(), "the operator exited"
    writes = rollout.writes()
    print(f"{writes} writes {dict(rollout.write_kinds())}; Ready pods never below {rollout.lowest_ready}")
    assert writes <= WRITE_BUDGET, f"{writes} writes (budget {WRITE_BUDGET}): {rollout.write_kinds()}"


def operator_through(
    proxy: FaultProxy, namespace: str, tmp_path: Path, cluster: LocalCluster, *flags: str
) -> OperatorOn:
    env = {**cluster.env, "KUBECONFIG": str(proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig"))}
    return OperatorOn([namespace], tmp_path / "operator.log", list(flags), env=env).start()
