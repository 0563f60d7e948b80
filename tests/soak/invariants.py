"""What the soak checks, continuously and at the end, and the record of what it found.

- capacity: an object's Ready pods (all its versions) never fall below the replicas it needs,
  unless a pod fault or a replicas edit of the soak's own touches it (until it has the pods spec
  asks for, at most POD_RECOVERY_SECONDS after). "Needs" is the smallest
  spec.replicas of the last REPLICAS_GRACE seconds: a scale-up is given time to happen. A dip
  that begins within LEFT_CANARY_SECONDS of a canary failing (rolled back or aborted) is the
  engine's rule, recorded apart from the violations until the object has its needed Ready pods
  back (at most POD_RECOVERY_SECONDS): a failed canary's pods go at once, before stable has its
  share back, and stable's new pods take as long as the scheduler and kubelet take. A canary left
  without failing (superseded, spec set back) keeps its Ready pods until stable is full again, so
  a dip then is a violation.
- liveness: the operator process runs, and finishes a pass within RECOVERY_SECONDS of each
  control-plane fault ending.
- once: no canary step ran twice, by two witnesses. Status, sampled every second all along: within
  one stretch of a rollout (same canary version and steps, no retry by the soak in between), a
  step index keeps the stepStartedAt it was first seen with. Events, at the end: within one
  stretch of StepStarted Events with no other Event of the operator in between, a step's Event
  appears once. An Event lost to a fault (the operator posts Events after the status write, and
  does not retry them) can only hide a step, never add one, so only duplicates count; and the
  operator's Event budget (a burst of 25 per object) leaves the status witness the only one late
  in a long soak.
- settled, observedGeneration, writes: checked at the end (see fleet.settled and soak.py).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.soak.kube import Kube

REPLICAS_GRACE = 20.0
RECOVERY_SECONDS = 30.0
LEFT_CANARY_SECONDS = 15.0
POD_RECOVERY_SECONDS = 120.0
FAILED_OUTCOMES = frozenset({"Aborted", "RolledBack"})


@dataclass(frozen=True)
class Violation:
    at: float  # seconds since the soak began
    obj: str
    what: str

    def __str__(self) -> str:
        return f"  t={self.at:6.1f}s {self.obj}: {self.what}"


@dataclass
class Record:
    """Everything the soak did and found; shared by its threads."""

    began: float = field(default_factory=time.monotonic)
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    checks: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[Violation] = field(default_factory=list)
    # Broken invariants that are a known, reported operator gap (docs/faults.md, Soak): printed
    # and counted on their own, so they cannot hide among, or pass for, anything new.
    known: list[Violation] = field(default_factory=list)
    cluster_faults: list[tuple[float, float]] = field(default_factory=list)  # wall clock, began/ended
    never_done: set[str] = field(default_factory=set)  # kinds of action or fault, once the soak is over
    retries: collections.Counter[str] = field(default_factory=collections.Counter)  # per object
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.began

    def violation(self, obj: str, what: str) -> None:
        with self.lock:
            self.violations.append(Violation(self.now(), obj, what))
        print(f"VIOLATION t={self.now():.1f}s {obj}: {what}", flush=True)

    def known_gap(self, obj: str, what: str) -> None:
        with self.lock:
            self.known.append(Violation(self.now(), obj, what))
        print(f"KNOWN GAP t={self.now():.1f}s {obj}: {what}", flush=True)

    def count(self, counter: collections.Counter[str], kind: str) -> None:
        with self.lock:
            counter[kind] += 1


@dataclass
class Exemptions:
    """Objects a pod fault of the soak's own touches: while a pod of theirs is crashed (no end),
    then until they have their needed Ready pods again (their ReplicaSet's replacement can take
    tens of seconds when the controller-manager is catching up after an apiserver restart), at most
    POD_RECOVERY_SECONDS after the fault ended."""

    until: dict[str, float] = field(default_factory=dict)  # monotonic
    ended: dict[str, float] = field(default_factory=dict)  # when the last pod fault on it ended
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, obj: str) -> None:
        with self.lock:
            self.until[obj] = float("inf")

    def end_open(self, obj: str, now: float) -> None:
        """An exemption open until further notice (a crashed pod) ends now."""
        with self.lock:
            if self.until.get(obj) == float("inf"):
                self.ended[obj], self.until[obj] = now, now + POD_RECOVERY_SECONDS

    def recovered(self, obj: str, now: float) -> None:
        """Enough Ready pods again: the fault's effect is over (once the fault's own change is
        surely visible, so a sample from before the deletion cannot end it)."""
        with self.lock:
            if self.until.get(obj, 0.0) != float("inf") and now - self.ended.get(obj, now) >= 3:
                self.until.pop(obj, None)

    def active(self, obj: str, now: float) -> bool:
        with self.lock:
            return self.until.get(obj, 0.0) > now


@dataclass
class StepsOnce:
    """The status witness of "no step twice" (see the module doc)."""

    record: Record
    stretch: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    started: dict[str, dict[int, str]] = field(default_factory=dict)  # index -> stepStartedAt

    def sample(self, name: str, status: dict[str, Any]) -> None:
        index, at = status.get("currentStepIndex"), status.get("stepStartedAt")
        with self.record.lock:
            retries = self.record.retries[name]
        stretch = (status.get("canaryVersion") or "", status.get("stepsHash") or "", retries)
        if self.stretch.get(name) != stretch:
            self.stretch[name], self.started[name] = stretch, {}
        if not stretch[0] or index is None or at is None:
            return
        self.record.count(self.record.checks, "no step twice (status samples)")
        first = self.started[name].setdefault(int(index), str(at))
        if first != at:
            self.record.violation(
                name, f"step {int(index) + 1} of version {stretch[0]} began again: {first}, then {at}"
            )
            self.started[name][int(index)] = str(at)


@dataclass
class CapacitySampler:
    kube: Kube
    record: Record
    exemptions: Exemptions
    operator_alive: Callable[[], bool]
    replicas_seen: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    canary: dict[str, str] = field(default_factory=dict)  # the canary version each object last had
    # The revisions each object's history showed ended Aborted or RolledBack: (revision, version).
    failed_revisions: dict[str, set[tuple[Any, Any]]] = field(default_factory=dict)
    left: dict[str, tuple[float, str]] = field(default_factory=dict)  # when a canary failed
    dipped: set[str] = field(default_factory=set)  # objects whose failed canary's dip has begun
    steps_once: StepsOnce | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-capacity")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        dead = False
        while not self._stop.wait(1.0):
            if not dead and not self.operator_alive():
                dead = True
                self.record.violation("operator", "the operator process exited")
            self.record.count(self.record.checks, "operator alive")
            try:
                objects, ready = self.kube.objects(), self.kube.ready_pods()
            except Exception:
                continue  # a read refused by a fault says nothing about the pods
            self.sample(objects, ready, time.monotonic())

    def sample(self, objects: dict[str, dict[str, Any]], ready: dict[str, int], now: float) -> None:
        for name, obj in objects.items():
            self._note_canary(name, obj.get("status") or {}, now)
            if self.steps_once is not None:
                self.steps_once.sample(name, obj.get("status") or {})
            seen = self.replicas_seen.setdefault(name, [])
            seen.append((now, int(obj["spec"].get("replicas", 1))))
            seen[:] = [(t, n) for t, n in seen if now - t <= REPLICAS_GRACE]
            needed = min(n for _, n in seen)
            if ready.get(name, 0) >= seen[-1][1]:  # what spec asks now, not the grace's minimum
                self.exemptions.recovered(name, now)
            if self.exemptions.active(name, now) or len(seen) < 2:
                continue
            self.record.count(self.record.checks, "capacity")
            if ready.get(name, 0) >= needed:
                continue
            what = f"{ready.get(name, 0)} Ready pods, needs {needed}"
            if self._in_failed_canary_dip(name, now):
                # A failed or aborted canary goes at once, before stable's new pods are Ready:
                # taking traffic off it is the point (docs/faults.md, Soak).
                left_at, version = self.left[name]
                self.record.known_gap(name, f"{what}, {now - left_at:.1f}s after canary {version} failed")
            else:
                self.record.violation(name, what)
        for name in list(self.left):
            self._end_failed_canary_window(name, ready.get(name, 0), now)

    def _in_failed_canary_dip(self, name: str, now: float) -> bool:
        """A dip belongs to a failed canary if it began within LEFT_CANARY_SECONDS of the failure;
        once begun it lasts until the pods are back (see _end_failed_canary_window)."""
        if name not in self.left:
            return False
        left_at = self.left[name][0]
        if name in self.dipped or now - left_at <= LEFT_CANARY_SECONDS:
            self.dipped.add(name)
            return True
        return False

    def _end_failed_canary_window(self, name: str, ready: int, now: float) -> None:
        left_at = self.left[name][0]
        needed = min(n for _, n in self.replicas_seen.get(name, [(now, 1)]))
        back = ready >= needed and (name in self.dipped or now - left_at > LEFT_CANARY_SECONDS)
        if back or now - left_at > POD_RECOVERY_SECONDS:
            self.left.pop(name)
            self.dipped.discard(name)

    def _note_canary(self, name: str, status: dict[str, Any], now: float) -> None:
        """A canary failed: seen leaving with its version as the failed one, or, when the failed
        state lasted less than a sample's interval (a retry right after an abort), by a revision of
        the history newly ended Aborted or RolledBack."""
        was, canary = self.canary.get(name, ""), status.get("canaryVersion") or ""
        failed = {
            (r.get("revision"), r.get("version"))
            for r in status.get("revisions") or []
            if r.get("outcome") in FAILED_OUTCOMES
        }
        newly = failed - self.failed_revisions.get(name, failed)
        if was and canary != was and status.get("failedVersion") == was:
            self.left[name] = (now, was)
        elif newly:
            self.left[name] = (now, str(max(newly, key=lambda r: r[0] or 0)[1]))
        self.canary[name] = canary
        self.failed_revisions[name] = failed


def duplicated_steps(events: list[Any]) -> dict[str, list[str]]:
    """Per object, the StepStarted messages seen twice within one stretch (see the module doc)."""
    stretch: dict[str, set[str]] = collections.defaultdict(set)
    found: dict[str, list[str]] = collections.defaultdict(list)
    for event in events:
        obj = event.involved_object.name
        if event.reason != "StepStarted":
            stretch[obj] = set()
            continue
        if event.message in stretch[obj]:
            found[obj].append(f"{event.message} (at {event.first_timestamp})")
        stretch[obj].add(event.message)
    return dict(found)
