"""Watches that go silent without closing: the operator notices and opens new ones within its
watch client timeout, and its liveness endpoint fails while no watch can be opened.

The operator runs with --watch-server-timeout 10 --watch-client-timeout 15: a watch that delivers
nothing is abandoned at most 15 s after it was opened (the production default is 330 s; kopf's
inactivity timeout of 70 s bounds it too). The proxy holding the watches is in front of this test's
operator only, on the shared cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.faults.rollout import RECOVERY_SECONDS, Rollout, assert_converged_once, operator_through
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster
from tests.support.k8s import ENV, wait_for

SHARED = LocalCluster("modelship", ENV)
CLIENT_TIMEOUT = 15
WATCH_FLAGS = ("--watch-server-timeout", "10", "--watch-client-timeout", str(CLIENT_TIMEOUT))


@pytest.fixture
def rollout(namespace: str, tmp_path: Path) -> Iterator[Rollout]:
    proxy = FaultProxy(SHARED.server, SHARED.directory / "pki").start()
    op = operator_through(proxy, namespace, tmp_path, SHARED, *WATCH_FLAGS)
    yield Rollout(SHARED, namespace, op, proxy)
    op.stop()
    proxy.stop()


def liveness(rollout: Rollout) -> int:
    try:
        url = f"http://127.0.0.1:{rollout.operator.liveness_port()}/healthz"
        return requests.get(url, timeout=10).status_code
    except requests.RequestException:
        return 0


def test_a_promote_sent_while_the_watches_are_silent_is_acted_on_after_they_are_replaced(
    rollout: Rollout,
) -> None:
    # Given the canary waiting for a promote
    rollout.begin()
    rollout.wait_step("waiting for a promote", 3, phase="Paused")
    # When every open watch goes silent without closing, and the user promotes meanwhile
    with rollout.proxy.holding_watches():
        held_at = time.monotonic()
        rollout.promote()
        # Then the operator replaces the silent watches and acts on the promote within the bound
        # (the pause that waited for it is over: the promotion runs or has run)
        wait_for(
            "the promote acted on",
            lambda: rollout.status().get("phase") != "Paused",
            CLIENT_TIMEOUT + RECOVERY_SECONDS,
        )
    rewatched = [
        r for r in rollout.proxy.forwarded_since(held_at) if r.watch and "modeldeployments" in r.path
    ]
    assert rewatched, "no new watch of ModelDeployments was opened"
    assert_converged_once(rollout, rollout.finish(promoted=True))


def test_liveness_fails_while_no_watch_can_be_opened_and_recovers_after(
    namespace: str, tmp_path: Path
) -> None:
    # Given an operator whose liveness endpoint answers 200
    proxy = FaultProxy(SHARED.server, SHARED.directory / "pki").start()
    op = operator_through(proxy, namespace, tmp_path, SHARED, *WATCH_FLAGS)
    rollout = Rollout(SHARED, namespace, op, proxy)
    try:
        wait_for("liveness 200", lambda: liveness(rollout) == 200, 30)
        # When every watch, open or new, stays silent
        with proxy.holding_watches(new_too=True):
            # Then liveness fails within the probe's bound, and the process keeps running
            wait_for("liveness failing", lambda: liveness(rollout) == 500, 30)
            assert op.alive()
        # And once watches can be opened again it answers 200 again
        wait_for("liveness 200 again", lambda: liveness(rollout) == 200, 30)
    finally:
        op.stop()
        proxy.stop()
