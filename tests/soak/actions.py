"""The soak's random actions: spec edits and user actions on ModelDeployments, and pod faults
through kwok's stages. Each kind comes up once per shuffled round, so a short run still does
every kind; which object, which version and when come from the seeded RNG.

A crashed pod is healed (deleted, so its ReplicaSet makes a new one) a few seconds later, so every
pod fault ends; until then, and until the object has its Ready pods back (invariants.Exemptions),
it is left out of the capacity check.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.soak import fleet
from tests.soak.invariants import Exemptions, Record
from tests.soak.kube import LABEL_OBJECT, LABEL_VERSION, Kube, is_ready

CRASH = {"stage.modelship.dev/crash": "true"}


@dataclass
class Actor:
    kube: Kube
    rng: random.Random
    record: Record
    exemptions: Exemptions
    names: list[str]
    # Objects where an abort or a crashed canary pod since the last version edit may have failed
    # the rollout: their expected end state allows Degraded on the version in spec.
    may_fail: set[str] = field(default_factory=set)
    crashed: list[tuple[float, str, str]] = field(default_factory=list)  # (heal at, pod, object)
    aborts: dict[str, str] = field(default_factory=dict)  # the last abort sent to each object
    _round: list[str] = field(default_factory=list)
    _serial: int = 1

    def kinds(self) -> dict[str, Callable[[str], None]]:
        return {
            "new version ok": lambda o: self.new_version(o, "ok"),
            "new version slow": lambda o: self.new_version(o, "slow"),
            "new version never-ready": lambda o: self.new_version(o, "never"),
            "new version crash": lambda o: self.new_version(o, "crash"),
            "back to stable": self.back_to_stable,
            "replicas": self.replicas,
            "steps": self.steps,
            "promote": lambda o: self.user_action(o, "promote"),
            "promote-full": lambda o: self.user_action(o, "promote-full"),
            "abort": lambda o: self.user_action(o, "abort"),
            "retry": lambda o: self.user_action(o, "retry"),
            "pod crash": self.crash_pod,
            "pod delete": self.delete_pod,
        }

    def act(self) -> None:
        """One action of the next kind in the round, on a random object."""
        self.heal()
        if not self._round:
            self._round = sorted(self.kinds())
            self.rng.shuffle(self._round)
        kind, obj = self._round.pop(), self.rng.choice(self.names)
        try:
            self.kinds()[kind](obj)
        except Exception as exc:  # an apiserver down or frozen refuses the user too
            self.record.count(self.record.refused, kind)
            print(f"t={self.record.now():6.1f}s {kind} on {obj}: refused ({type(exc).__name__})", flush=True)
            return
        self.record.count(self.record.actions, kind)
        print(f"t={self.record.now():6.1f}s {kind} on {obj}", flush=True)

    # -- spec edits -------------------------------------------------------------------------------
    def new_version(self, obj: str, how: str) -> None:
        self._serial += 1
        self._version_edit(obj, self.kube.objects()[obj].get("status") or {})
        self.kube.patch(obj, fleet.version_patch(f"{self._serial}-{how}"))

    def back_to_stable(self, obj: str) -> None:
        """Spec set back to the stable version: the GitOps way to roll back."""
        status = self.kube.objects()[obj].get("status") or {}
        self._version_edit(obj, status)
        self.kube.patch(obj, fleet.version_patch(status.get("stableVersion") or "1-ok"))

    def _version_edit(self, obj: str, status: dict[str, Any]) -> None:
        """A version edit starts afresh, unless an abort sent before it is not handled yet: the
        operator acts on an action in the state it first sees it in, and may see the abort together
        with the edit (its watch silent meanwhile, say) and abort the new version's rollout."""
        pending = self.aborts.get(obj)
        if pending is None or (status.get("handledActions") or {}).get("abort") == pending:
            self.may_fail.discard(obj)

    def replicas(self, obj: str) -> None:
        # New pods are the controller-manager's to make, and it can take tens of seconds after an
        # apiserver restart: like a pod fault, the object is exempt until it has them (seed
        # 960685080: 2 -> 4 replicas 6 s after a restart, Ready 24 s later, with 20 s of grace).
        self.exemptions.open(obj)
        try:
            self.kube.patch(obj, {"spec": {"replicas": self.rng.randint(2, 4)}})
        finally:
            self.exemptions.end_open(obj, time.monotonic())

    def steps(self, obj: str) -> None:
        plan = self.rng.choice(fleet.STEP_PLANS)
        self.kube.patch(obj, {"spec": {"rollout": {"canary": {"steps": plan}}}})

    # -- user actions -----------------------------------------------------------------------------
    def user_action(self, obj: str, action: str) -> None:
        if action == "abort":
            self.may_fail.add(obj)  # before sending: a refused request may still have landed
        if action == "retry":  # restarts the steps: a new stretch for the "no step twice" witness
            self.record.count(self.record.retries, obj)
        self._serial += 1
        if action == "abort":
            self.aborts[obj] = f"soak-{self._serial}"
        self.kube.annotate(obj, f"modelship.dev/{action}", f"soak-{self._serial}")

    # -- pod faults -------------------------------------------------------------------------------
    def _ready_pod(self, obj: str) -> Any | None:
        pods = [
            p
            for p in self.kube.pods()
            if (p.metadata.labels or {}).get(LABEL_OBJECT) == obj
            and not p.metadata.deletion_timestamp
            and is_ready(p)
        ]
        return self.rng.choice(sorted(pods, key=lambda p: p.metadata.name)) if pods else None

    def crash_pod(self, obj: str) -> None:
        pod = self._ready_pod(obj)
        if pod is None:
            return
        status = self.kube.objects()[obj].get("status") or {}
        if pod.metadata.labels.get(LABEL_VERSION) != status.get("stableVersion"):
            self.may_fail.add(obj)  # a crash-looping canary is rolled back: the engine's rule
        heal_at = time.monotonic() + self.rng.uniform(2, 6)
        self.exemptions.open(obj)
        self.kube.label_pod(pod.metadata.name, CRASH)
        self.crashed.append((heal_at, pod.metadata.name, obj))

    def delete_pod(self, obj: str) -> None:
        pod = self._ready_pod(obj)
        if pod is None:
            return
        self.exemptions.open(obj)
        try:
            self.kube.delete_pod(pod.metadata.name)
        finally:
            if not any(o == obj for _, _, o in self.crashed):
                self.exemptions.end_open(obj, time.monotonic())

    def heal(self, everything: bool = False) -> None:
        """Deletes crashed pods whose time is up (all of them with `everything`)."""
        now, keep = time.monotonic(), []
        for heal_at, pod, obj in self.crashed:
            if not everything and heal_at > now:
                keep.append((heal_at, pod, obj))
                continue
            try:
                self.kube.delete_pod(pod)
            except Exception as exc:
                if getattr(exc, "status", None) != 404:  # gone already: its version was scaled away
                    keep.append((heal_at, pod, obj))
                    continue
        self.crashed = keep
        for obj in set(self.names) - {o for _, _, o in keep}:
            # Every crashed pod of it is gone: counted again once its replacements are Ready.
            self.exemptions.end_open(obj, time.monotonic())
