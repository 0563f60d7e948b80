"""The soak's control-plane faults, one at a time with a quiet gap between: restarts and freezes
of the faults cluster's own apiserver and etcd, and the operator's traffic dropped, answered
429/409, or its open watches silenced (open, delivering nothing, until the operator gives them up
after its --watch-client-timeout) at its proxy, or a status write stored while the operator hears
504 and its watches fall silent (etcd frozen right after it took the write). Each kind comes once
per shuffled round. After each, the operator must finish a pass within RECOVERY_SECONDS, or that is
a violation."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from tests.soak.invariants import RECOVERY_SECONDS, Record
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster, OperatorOn
from tests.support.k8s import wait_for

# Faults the cluster's own controllers live through too, and lag behind after.
CLUSTER_WIDE = frozenset({"kube-apiserver restart", "etcd restart", "etcd frozen"})


@dataclass
class ControlPlaneFaults:
    cluster: LocalCluster
    proxy: FaultProxy
    operator: OperatorOn
    rng: random.Random
    record: Record
    gap: tuple[float, float]  # seconds of quiet between two faults
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _round: list[str] = field(default_factory=list)

    def kinds(self) -> dict[str, Callable[[], None]]:
        return {
            "kube-apiserver restart": lambda: self.cluster.restart("kube-apiserver"),
            "etcd restart": lambda: self.cluster.restart("etcd"),
            "etcd frozen": lambda: self._hold(self.cluster.frozen("etcd"), 2, 6),
            "429 to every request": lambda: self._hold(self.proxy.answering(429), 3, 8),
            "409 to every write": lambda: self._hold(self.proxy.answering(409, writes_only=True), 3, 8),
            "partition": lambda: self._hold(self.proxy.dropping(), 2, 6),
            "watches silent": lambda: self._hold(self.proxy.holding_watches(), 2, 6),
            "a status write stored unanswered": self._lose_a_status_write,
        }

    def _lose_a_status_write(self) -> None:
        with self.proxy.losing_answer(to=FaultProxy.status_write) as lost:
            time.sleep(self.rng.uniform(2, 6))  # how long new watches stay silent after it
        what = f"{lost.path.split('?')[0].rsplit('/', 2)[-2]} stored ({lost.stored})" if lost.path else "none"
        print(f"t={self.record.now():6.1f}s   the write whose answer was lost: {what}", flush=True)

    def _hold(self, fault: AbstractContextManager[object], low: float, high: float) -> None:
        with fault:
            time.sleep(self.rng.uniform(low, high))  # the length of the fault is the fault itself
        wait_for("the apiserver to answer", self.cluster.answers, 60)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-faults")
        self._thread.start()

    def stop(self) -> None:
        """Lets the fault under way end (and its recovery be checked), then no more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(180)

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.gap)):
            self.inject_one()

    def inject_one(self) -> None:
        if not self._round:
            self._round = sorted(self.kinds())
            self.rng.shuffle(self._round)
        kind = self._round.pop()
        print(f"t={self.record.now():6.1f}s fault: {kind}", flush=True)
        began = time.time()
        try:
            self.kinds()[kind]()
        except AssertionError as exc:  # the cluster itself did not come back: nothing to judge after
            self.record.violation("cluster", f"{kind}: {exc}")
            return
        self.record.count(self.record.faults, kind)
        if kind in CLUSTER_WIDE:
            with self.record.lock:
                self.record.cluster_faults.append((began, time.time()))
        self.record.count(self.record.checks, "recovery after a fault")
        before, ended = self.operator.reconciled(), time.monotonic()
        try:
            wait_for(
                f"a pass after {kind}", lambda: self.operator.reconciled() > before, RECOVERY_SECONDS, 0.2
            )
        except AssertionError:
            self.record.violation("operator", f"no pass finished within {RECOVERY_SECONDS:.0f}s after {kind}")
            return
        print(f"t={self.record.now():6.1f}s   a pass {time.monotonic() - ended:.1f}s after it", flush=True)
