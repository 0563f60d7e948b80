"""A canary rollout while the apiserver or etcd restarts or freezes. These stop the apiserver for
everybody, so they run on the fault tests' own cluster (modelship-faults), one at a time; the
operator reaches it through a passing proxy that counts its requests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.rollout import RECOVERY_SECONDS, Rollout, assert_converged_once, operator_through
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster, wait_reconciled_after
from tests.support.k8s import wait_for


@pytest.fixture
def rollout(faults_cluster: LocalCluster, tmp_path: Path) -> Iterator[Rollout]:
    ns = f"cp-{uuid.uuid4().hex[:6]}"
    faults_cluster.kubectl("create", "namespace", ns)
    wait_for("the default ServiceAccount", lambda: faults_cluster.kubectl("-n", ns, "get", "sa", "default"))
    proxy = FaultProxy(faults_cluster.server, faults_cluster.directory / "pki").start()
    op = operator_through(proxy, ns, tmp_path, faults_cluster)
    yield Rollout(faults_cluster, ns, op, proxy)
    op.stop()
    proxy.stop()
    faults_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_an_apiserver_restart_during_the_timed_pause_loses_and_repeats_nothing(rollout: Rollout) -> None:
    # Given the canary in its timed pause
    rollout.begin()
    rollout.wait_step("the timed pause", 1, phase="Paused")
    # When kube-apiserver is killed and the supervisor starts it again
    rollout.cluster.restart("kube-apiserver")
    # Then the operator reconciles within the bound and the rollout converges once
    wait_reconciled_after(rollout.operator, "the apiserver restart", RECOVERY_SECONDS)
    assert_converged_once(rollout, rollout.finish())


def test_an_etcd_restart_during_a_weight_step_loses_and_repeats_nothing(rollout: Rollout) -> None:
    # Given the canary at its second weight step
    rollout.begin()
    rollout.wait_step("the 50% step", 2)
    # When etcd is killed and the supervisor starts it again
    rollout.cluster.restart("etcd")
    # Then the operator reconciles within the bound and the rollout converges once
    wait_reconciled_after(rollout.operator, "the etcd restart", RECOVERY_SECONDS)
    assert_converged_once(rollout, rollout.finish())


def test_etcd_frozen_while_waiting_for_a_promote_loses_and_repeats_nothing(rollout: Rollout) -> None:
    # Given the canary waiting for a promote
    rollout.begin()
    rollout.wait_step("waiting for a promote", 3, phase="Paused")
    # When etcd stops answering for 12 s (long enough for controllers to lose their leases)
    with rollout.cluster.frozen("etcd"):
        time.sleep(12)  # the length of the freeze is the fault itself, not a synchronisation
    wait_for("the apiserver to answer", rollout.cluster.answers, 60)
    # Then the promote that follows is acted on within the bound, and the rollout converges once
    rollout.promote()
    wait_reconciled_after(rollout.operator, "the promote after the freeze", RECOVERY_SECONDS)
    assert_converged_once(rollout, rollout.finish(promoted=True))
