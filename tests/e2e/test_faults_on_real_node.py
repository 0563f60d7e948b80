"""A canary on the real node, under steady client load, while the operator's link to the apiserver
is cut and then answered with conflicts: clients notice nothing, and no step runs twice.

The faults sit in a proxy in front of this test's operator only (tests/support/fault_proxy.py), so
the shared cluster and its other tests do not see them. The kwok-only stories of the same faults
(tests/faults/) check the invariants at scale; this one checks what clients of real pods see.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.traffic import steady_load
from tests.e2e.load_support import (
    NAME,
    assert_no_failures,
    manifest,
    serve_v1,
    wait_canary_answering,
    wait_pods_gone,
    wait_status,
)
from tests.e2e.support import cluster_ip
from tests.faults.rollout import RECOVERY_SECONDS, operator_through
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster, OperatorOn, wait_reconciled_after
from tests.support.k8s import ENV, apply, get_json, kubectl, wait_for

SHARED = LocalCluster("modelship", ENV)
STEPS: list[dict[str, Any]] = [
    {"setWeight": 34},
    {"pause": {"duration": "5s"}},
    {"setWeight": 67},
    {"pause": {}},
]


@pytest.fixture
def proxied(namespace: str, tmp_path: Path) -> Iterator[tuple[OperatorOn, FaultProxy]]:
    proxy = FaultProxy(SHARED.server, SHARED.directory / "pki").start()
    op = operator_through(proxy, namespace, tmp_path, SHARED)
    yield op, proxy
    op.stop()
    proxy.stop()


def step_starts(ns: str) -> collections.Counter[str]:
    """Each step of v2's canary entered, by its Event: RolloutStarted enters step 1."""
    events = get_json("-n", ns, "events", "--field-selector", f"involvedObject.name={NAME}")["items"]
    return collections.Counter(
        e["message"]
        for e in events
        if e["reason"] == "StepStarted" or (e["reason"] == "RolloutStarted" and "v2" in e["message"])
    )


def test_a_canary_through_a_partition_and_conflicts_fails_no_request_and_repeats_no_step(
    namespace: str, proxied: tuple[OperatorOn, FaultProxy], real_node: str, iris_model: bytes
) -> None:
    op, proxy = proxied
    # Given v1 Healthy on 3 real pods under steady client load, and the canary of v2 in its timed pause
    base = serve_v1(namespace, iris_model, 3, STEPS)
    with steady_load(cluster_ip(namespace, NAME), NAME) as load:
        apply(namespace, manifest(base, "v2", iris_model, 3, STEPS))
        wait_status(namespace, "the timed pause", phase="Paused", currentStepIndex=1)
        # (the step's Event is posted after its status: a fault in between would lose it)
        wait_for("the timed pause's Event", lambda: len(step_starts(namespace)) >= 2)
        wait_canary_answering(namespace)
        # When the operator's traffic is dropped for longer than the pause, which ends unseen
        with proxy.dropping():
            time.sleep(10)  # the length of the partition is the fault itself, not a synchronisation
        wait_reconciled_after(op, "the partition", RECOVERY_SECONDS)
        # And, at the pause that waits for a promote, every write of the operator is refused with 409
        # while the user promotes
        wait_status(namespace, "waiting for a promote", phase="Paused", currentStepIndex=3)
        wait_for("the last pause's Event", lambda: len(step_starts(namespace)) >= 4)
        with proxy.answering(409, writes_only=True):
            kubectl("-n", namespace, "annotate", "--overwrite", "mdep", NAME, "modelship.dev/promote=p1")
            time.sleep(5)  # the length of the conflicts is the fault itself
        wait_reconciled_after(op, "the conflicts", RECOVERY_SECONDS)
        # Then v2 is promoted, v1's pods drain away, and no client request failed at any moment
        wait_status(namespace, "v2 promoted", phase="Healthy", stableVersion="v2")
        wait_pods_gone(namespace, "v1")
        assert_no_failures(load, {"v1", "v2"})
    # And each step was entered exactly once, the operator never exited
    starts = step_starts(namespace)
    assert len(starts) == len(STEPS) and set(starts.values()) == {1}, starts
    assert op.alive(), "the operator exited"
