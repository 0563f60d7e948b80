"""A canary rollout while the operator's own traffic to the apiserver is dropped, throttled (429),
refused as conflicting (409), or answered with a timeout after it was stored, on the shared
cluster: the faults sit in a proxy in front of this test's operator only, so other tests do not
notice them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.rollout import RECOVERY_SECONDS, Rollout, assert_converged_once, operator_through
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster, wait_reconciled_after
from tests.support.k8s import ENV, wait_for

SHARED = LocalCluster("modelship", ENV)


# Watches the proxy silences are given up by the operator's client after 15 s and opened again.
QUICK_WATCHES = ("--watch-server-timeout", "10", "--watch-client-timeout", "15")


@contextlib.contextmanager
def proxied_rollout(namespace: str, tmp_path: Path, *flags: str) -> Iterator[Rollout]:
    proxy = FaultProxy(SHARED.server, SHARED.directory / "pki").start()
    op = operator_through(proxy, namespace, tmp_path, SHARED, *flags)
    yield Rollout(SHARED, namespace, op, proxy)
    op.stop()
    proxy.stop()


@pytest.fixture
def rollout(namespace: str, tmp_path: Path) -> Iterator[Rollout]:
    with proxied_rollout(namespace, tmp_path) as r:
        yield r


@pytest.fixture
def rollout_quick_watches(namespace: str, tmp_path: Path) -> Iterator[Rollout]:
    with proxied_rollout(namespace, tmp_path, *QUICK_WATCHES) as r:
        yield r


def test_without_a_fault_the_rollout_converges_within_the_write_budget(rollout: Rollout) -> None:
    # Given version 1 Healthy, when the canary of version 2 runs to the end
    rollout.begin()
    final = rollout.finish()
    # Then: the reference every fault test compares with
    assert_converged_once(rollout, final)


def test_a_partition_during_the_timed_pause_loses_and_repeats_nothing(rollout: Rollout) -> None:
    # Given the canary in its timed pause
    rollout.begin()
    rollout.wait_step("the timed pause", 1, phase="Paused")
    # When the operator's traffic is dropped for longer than the pause (which ends unseen)
    with rollout.proxy.dropping():
        time.sleep(10)  # the length of the partition is the fault itself, not a synchronisation
    # Then the operator acts again within the recovery bound, and the rollout converges once
    wait_reconciled_after(rollout.operator, "the partition", RECOVERY_SECONDS)
    assert_converged_once(rollout, rollout.finish())


def test_429s_for_the_operator_during_a_weight_step_only_delay_it(rollout: Rollout) -> None:
    # Given the canary at its first weight step
    rollout.begin()
    rollout.wait_step("the 20% step", 0)
    # When API Priority and Fairness answers every request of the operator with 429 for 10 s
    with rollout.proxy.answering(429):
        time.sleep(10)  # the length of the throttling is the fault itself
    # Then it recovers within the bound and the rollout converges once, with no write storm
    wait_reconciled_after(rollout.operator, "the throttling", RECOVERY_SECONDS)
    assert_converged_once(rollout, rollout.finish())


def test_conflicts_and_a_concurrent_writer_during_the_rollout_lose_and_repeat_nothing(
    rollout: Rollout,
) -> None:
    # Given the canary under way
    rollout.begin()
    rollout.wait_step("the timed pause", 1, phase="Paused")
    # When another writer keeps changing the ModelDeployment and every write of the operator is
    # answered 409 Conflict for 10 s
    stop = threading.Event()

    def other_writer() -> None:
        tick = 0
        while not stop.is_set():
            tick += 1
            rollout.cluster.kubectl(
                "-n", rollout.namespace, "annotate", "--overwrite", "mdep", "iris", f"example.com/tick={tick}"
            )
            time.sleep(0.5)

    writer = threading.Thread(target=other_writer, daemon=True)
    writer.start()
    try:
        with rollout.proxy.answering(409, writes_only=True):
            time.sleep(10)  # the length of the conflicts is the fault itself
        wait_reconciled_after(rollout.operator, "the conflicts", RECOVERY_SECONDS)
        final = rollout.finish()
    finally:
        stop.set()
        writer.join(10)
    # Then the rollout converged once, and the writer's edits cost no write storm
    assert_converged_once(rollout, final)


def status_write_entering(step: int) -> Callable[[str, str, bytes], bool]:
    def match(method: str, path: str, body: bytes) -> bool:
        if method != "PATCH" or not path.split("?")[0].endswith("/modeldeployments/iris/status"):
            return False
        return bool(json.loads(body).get("status", {}).get("currentStepIndex") == step)

    return match


def test_a_status_write_stored_but_unanswered_does_not_begin_its_step_again(
    rollout_quick_watches: Rollout,
) -> None:
    rollout = rollout_quick_watches
    # Given the canary at its first weight step, its pods turning Ready
    rollout.begin()
    rollout.wait_step("the 20% step", 0)
    # When the status write that enters the timed pause is stored, but the operator hears 504
    # (Timeout) and its watches fall silent, as when etcd freezes after taking a write
    with rollout.proxy.losing_answer(to=status_write_entering(1)) as lost:
        wait_for("the write that enters the timed pause", lambda: lost.stored, 60)
        time.sleep(5)  # watches opened meanwhile stay silent: the length of the freeze is the fault
    assert lost.stored == 200, f"the apiserver answered the lost write {lost.stored}"
    # Then the operator acts again within the bound, and the pause keeps the start the lost write
    # stored: the rollout converges once, with no step begun again (its Event may be lost)
    wait_reconciled_after(rollout.operator, "the lost answer", RECOVERY_SECONDS)
    assert_converged_once(rollout, rollout.finish(), events_lost=1)
