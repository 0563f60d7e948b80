"""`make soak`: SOAK_OBJECTS ModelDeployments (default 50) through random spec edits, user
actions, pod faults and control-plane faults for SOAK_SECONDS (default 600), on the fault tests'
own kwok-only cluster, with one operator behind a fault proxy; the invariants (invariants.py) are
checked all along and once everything has settled. Prints what it did and found; exits 1 on any
violation. SOAK_SEED replays a run's choices (the timing of a cluster is not replayed).

    SOAK_SEED=7 SOAK_OBJECTS=10 SOAK_SECONDS=60 .venv/bin/python -m tests.soak.soak
"""

from __future__ import annotations

import collections
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.faults.rollout import operator_through
from tests.soak import fleet
from tests.soak.actions import Actor
from tests.soak.control_plane import ControlPlaneFaults
from tests.soak.invariants import CapacitySampler, Exemptions, Record, StepsOnce, duplicated_steps
from tests.soak.kube import Kube
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster, OperatorOn, cluster_up, exclusive
from tests.support.k8s import wait_for

CLUSTER_LAG_SECONDS = 120.0
SETTLE_SECONDS = 240.0  # a never-Ready version's deadline, a canary's steps, and a fault's back-off
# Writes the operator may send: twice the 4 per action (or fault) a 10-object run measured, refused
# ones included. A retry loop or a step run again would cost far more.
WRITES_PER_OBJECT = 10
WRITES_PER_ACTION = 8
WATCH_CLIENT_TIMEOUT = 15


@dataclass(frozen=True)
class Config:
    seed: int
    objects: int
    seconds: float
    action_interval: float
    fault_gap: tuple[float, float]

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(
            seed=int(env.get("SOAK_SEED") or random.SystemRandom().randrange(1 << 30)),
            objects=int(env.get("SOAK_OBJECTS", "50")),
            seconds=float(env.get("SOAK_SECONDS", "600")),
            action_interval=float(env.get("SOAK_ACTION_INTERVAL", "1.0")),
            fault_gap=(float(env.get("SOAK_FAULT_GAP_MIN", "5")), float(env.get("SOAK_FAULT_GAP_MAX", "15"))),
        )


def run(config: Config, workdir: Path) -> Record:
    print(
        f"soak: seed {config.seed}, {config.objects} objects, {config.seconds:.0f}s "
        f"(replay: SOAK_SEED={config.seed} SOAK_OBJECTS={config.objects} SOAK_SECONDS={config.seconds:.0f})",
        flush=True,
    )
    with exclusive(cluster_up()) as cluster:
        return soak_on(cluster, config, workdir)


def soak_on(cluster: LocalCluster, config: Config, workdir: Path) -> Record:
    """The soak on a cluster the caller holds exclusively."""
    namespace = cluster.new_namespace("soak")
    proxy = FaultProxy(cluster.server, cluster.directory / "pki").start()
    # JSON lines carry a timestamp each, so a violation's time can be lined up with the operator's log.
    # A silenced watch is given up after WATCH_CLIENT_TIMEOUT s (330 by default, too long for a soak).
    watch_flags = ("--watch-server-timeout", "10", "--watch-client-timeout", str(WATCH_CLIENT_TIMEOUT))
    operator = operator_through(proxy, namespace, workdir, cluster, "--log-format", "json", *watch_flags)
    print(f"soak: namespace {namespace}, operator log {operator.log_path}", flush=True)
    try:
        return _soak(config, cluster, Kube.connect(cluster.kubeconfig, namespace), proxy, operator)
    finally:
        operator.stop()
        proxy.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _soak(
    config: Config, cluster: LocalCluster, kube: Kube, proxy: FaultProxy, operator: OperatorOn
) -> Record:
    # One RNG per thread of choices, so that how they interleave does not change what each chooses.
    names = [f"soak-{i:02d}" for i in range(config.objects)]
    fleet_rng = random.Random(f"{config.seed}-fleet")
    for name in names:
        kube.create(fleet.first_manifest(fleet_rng, name))
    wait_for("every object Healthy on 1-ok", lambda: _all_settled(kube, set()), 180, interval=2)

    record, exemptions = Record(), Exemptions()
    actor = Actor(kube, random.Random(f"{config.seed}-actions"), record, exemptions, names)
    sampler = CapacitySampler(kube, record, exemptions, operator.alive, steps_once=StepsOnce(record))
    faults_rng = random.Random(f"{config.seed}-faults")
    faults = ControlPlaneFaults(cluster, proxy, operator, faults_rng, record, config.fault_gap)
    began = time.monotonic()
    sampler.start()
    faults.start()
    while time.monotonic() - began < config.seconds:
        actor.act()
        time.sleep(config.action_interval)
    print(f"t={record.now():6.1f}s actions stop; waiting for the fault under way", flush=True)
    faults.stop()
    actor.heal(everything=True)
    _settle(kube, actor, record)
    sampler.stop()
    _check_steps(kube, record)
    _check_writes(proxy, began, record, config.objects)
    if not operator.alive():
        record.violation("operator", "the operator process exited")
    record.never_done = (set(actor.kinds()) | set(faults.kinds())) - set(record.actions) - set(record.faults)
    return record


def _all_settled(kube: Kube, may_fail: set[str]) -> bool:
    return all(fleet.settled(o, n in may_fail).ok for n, o in kube.objects().items())


def _settle(kube: Kube, actor: Actor, record: Record) -> None:
    """Promotes whatever waits for a promote (a user would), until every object has settled."""
    deadline, last, objects = time.monotonic() + SETTLE_SECONDS, {}, {}
    while time.monotonic() < deadline:
        try:
            objects = kube.objects()
        except Exception:
            time.sleep(2)
            continue
        last = {
            n: fleet.settled(o, n in actor.may_fail or _deadline_after_cluster_fault(o, record))
            for n, o in objects.items()
        }
        if all(s.ok for s in last.values()):
            break
        for name, obj in objects.items():
            if ((obj.get("status") or {}).get("rollout") or {}).get("waitingForPromote"):
                actor.user_action(name, "promote")
                record.count(record.actions, "promote (settling)")
        time.sleep(2)
    print(f"t={record.now():6.1f}s settled: {sum(s.ok for s in last.values())}/{len(last)}", flush=True)
    lagged = sorted(
        n for n, o in objects.items() if n not in actor.may_fail and _deadline_after_cluster_fault(o, record)
    )
    print(f"rolled back on their deadline after an apiserver or etcd fault: {', '.join(lagged) or 'none'}")
    for name, result in sorted(last.items()):
        record.count(record.checks, "settled on the engine's end state, observedGeneration == generation")
        if not result.ok:
            record.violation(name, f"not settled after {SETTLE_SECONDS:.0f}s: {result.why}")


def _deadline_after_cluster_fault(obj: dict[str, Any], record: Record) -> bool:
    """Whether the object's failed rollout ran out of its progress deadline during, or within
    CLUSTER_LAG_SECONDS after, an apiserver or etcd fault. The controller-manager can then take
    a minute to create pods (a ReplicaSet scaled at 22:02:53 made its pods at 22:03:59 in one run),
    and rolling back a version that is not Ready by its deadline is the engine's rule."""
    status = obj.get("status") or {}
    failed = status.get("failedVersion")
    rev = next((r for r in reversed(status.get("revisions") or []) if r["version"] == failed), None)
    if rev is None or rev.get("reason") != "ProgressDeadlineExceeded":
        return False
    began = datetime.fromisoformat(rev["deployedAt"]).timestamp()
    ended = datetime.fromisoformat(rev.get("finishedAt") or rev["deployedAt"]).timestamp()
    return any(
        start <= ended and stop + CLUSTER_LAG_SECONDS >= began for start, stop in record.cluster_faults
    )


def _check_steps(kube: Kube, record: Record) -> None:
    events = kube.events()
    record.count(record.checks, f"no step twice (over {len(events)} Events)")
    for name, repeats in sorted(duplicated_steps(events).items()):
        record.violation(name, f"a step ran twice: {repeats}")


def _check_writes(proxy: FaultProxy, began: float, record: Record, objects: int) -> None:
    writes = proxy.writes_between(began, time.monotonic())
    done = sum(record.actions.values()) + sum(record.faults.values())
    budget = WRITES_PER_OBJECT * objects + WRITES_PER_ACTION * done
    kinds = collections.Counter(f"{w.method} {w.answered or 'sent'}" for w in writes)
    print(f"writes: {len(writes)} (budget {budget}): {dict(kinds)}", flush=True)
    record.count(record.checks, "write budget")
    if len(writes) > budget:
        record.violation("operator", f"{len(writes)} writes, budget {budget}: {dict(kinds)}")


def summary(record: Record) -> str:
    def listed(counter: collections.Counter[str]) -> str:
        return "\n".join(f"  {n:6d}  {k}" for k, n in sorted(counter.items())) or "  none"

    lines = [
        f"actions done ({sum(record.actions.values())}):",
        listed(record.actions),
        f"actions refused by a fault ({sum(record.refused.values())}):",
        listed(record.refused),
        f"control-plane faults injected ({sum(record.faults.values())}):",
        listed(record.faults),
        "invariants checked:",
        listed(record.checks),
        f"kinds of action or fault never done: {', '.join(sorted(record.never_done)) or 'none'}",
        f"known gaps ({len(record.known)}; failed-canary dips are the engine's rule; docs/faults.md, Soak):",
        *(str(v) for v in record.known),
        f"violations ({len(record.violations)}):",
        *(str(v) for v in record.violations),
    ]
    return "\n".join(lines)


def main() -> int:
    config = Config.from_env()
    workdir = Path(tempfile.mkdtemp(prefix=f"modelship-soak-{config.seed}-"))
    record = run(config, workdir)
    print(summary(record), flush=True)
    print(f"soak: seed {config.seed}: {'FAILED' if record.violations else 'passed'}", flush=True)
    return 1 if record.violations else 0


if __name__ == "__main__":
    sys.exit(main())
