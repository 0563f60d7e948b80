"""The Controller's own settings, with a fake cluster: what `--max-workers` bounds."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from modelship.child_cache import KINDS
from modelship.cli import parse_args
from modelship.controller import Controller
from modelship.settings import Settings

from .builders import T0, md


class PairedCluster:
    """Each apply waits until a second one is in flight, so calls run in pairs; it records which
    thread served each call. (Reads come from the caches, not from here.)"""

    def __init__(self) -> None:
        self.pair = threading.Barrier(2, timeout=30)
        self.threads: set[str] = set()
        self.applied: list[str] = []  # list.append is atomic across threads; += on an int is not

    def apply(self, md: Any, plan: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.applied.append(md.metadata.name)
        self.pair.wait()

    def write_status(self, md: Any, status: Any) -> bool:
        return False

    def post_events(self, md: Any, events: Any, now: Any) -> None:
        pass


def test_max_workers_bounds_the_api_calls_in_flight_across_objects() -> None:
    # Given an operator with --max-workers 2, synced (empty) child caches, and eight objects whose
    # writes block until paired
    cluster = PairedCluster()
    controller = Controller(cluster, Settings(max_workers=2), clock=lambda: T0)  # type: ignore[arg-type]
    for i in range(8):
        body = md("1").model_dump(by_alias=True, mode="json", exclude_none=True)
        body["metadata"]["name"] = f"m{i}"
        controller.seen("ml", f"m{i}", body)

    async def all_at_once() -> None:
        for resource in KINDS:
            controller.children.absent(resource, None)
        await asyncio.gather(*(controller.request("ml", f"m{i}") for i in range(8)))

    # When all eight are reconciled at once
    asyncio.run(all_at_once())
    # Then every write ran, on the same two threads (an unbounded pool would start one per write)
    assert sorted(cluster.applied) == [f"m{i}" for i in range(8)]
    assert len(cluster.threads) == 2


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_max_workers_below_one_is_a_clear_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["run", "--max-workers", value])
    assert "--max-workers" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-5", "inf", "nan", "fast"])
def test_a_kube_api_qps_that_is_not_a_positive_number_is_a_clear_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["run", "--kube-api-qps", value])
    assert "--kube-api-qps" in capsys.readouterr().err


def test_max_workers_reaches_the_settings() -> None:
    assert parse_args(["run", "--max-workers", "3"]).max_workers == 3
    assert parse_args(["run"]).max_workers == 20


class FlakyCluster:
    """Refuses every apply while `failing` is set, as the apiserver does during a fault."""

    def __init__(self) -> None:
        self.failing = True
        self.applied: list[str] = []

    def apply(self, md: Any, plan: Any) -> None:
        if self.failing:
            raise RuntimeError("the apiserver refused the write")
        self.applied.append(md.metadata.name)

    def write_status(self, md: Any, status: Any) -> bool:
        return False

    def post_events(self, md: Any, events: Any, now: Any) -> None:
        pass


def test_many_passes_failed_in_a_short_fault_are_retried_within_seconds_of_it() -> None:
    # Given an object whose passes fail: a burst of child events during a short fault, each of
    # which started a pass (a 409 storm of a few seconds saw 13 of them)
    cluster = FlakyCluster()
    controller = Controller(cluster, Settings(), clock=lambda: T0)  # type: ignore[arg-type]
    controller.seen("ml", "iris", md("1").model_dump(by_alias=True, mode="json", exclude_none=True))

    async def fault_then_quiet() -> None:
        for resource in KINDS:
            controller.children.absent(resource, None)
        for _ in range(13):
            await controller.request("ml", "iris")
        # When the fault ends and nothing else happens to the object
        cluster.failing = False
        for _ in range(50):
            if cluster.applied:
                return
            await asyncio.sleep(0.1)

    asyncio.run(fault_then_quiet())
    # Then the retry came within seconds (counting failed passes, it waited 300 s)
    assert cluster.applied == ["iris"]


class DeletedCluster:
    """The apiserver after the ModelDeployment was deleted unseen: its status write finds nothing."""

    def __init__(self) -> None:
        self.applied = 0

    def apply(self, md: Any, plan: Any) -> None:
        self.applied += 1

    def write_status(self, md: Any, status: Any) -> bool:
        body = {"reason": "NotFound", "code": 404, "details": {"name": "iris", "kind": "modeldeployments"}}
        raise ApiException(status=404, reason="Not Found", body=json.dumps(body))

    def post_events(self, md: Any, events: Any, now: Any) -> None:
        pass


def test_an_object_deleted_while_the_watch_missed_it_is_forgotten_at_its_first_404() -> None:
    # Given an object the operator still holds, which the apiserver no longer has (deleted while
    # the watch lost events; the relist after a 410 does not say what vanished)
    cluster = DeletedCluster()
    controller = Controller(cluster, Settings(), clock=lambda: T0)  # type: ignore[arg-type]
    controller.seen("ml", "iris", md("1").model_dump(by_alias=True, mode="json", exclude_none=True))

    async def passes() -> None:
        for resource in KINDS:
            controller.children.absent(resource, None)
        # When a pass finds it gone, and the events of its children's deletion start more passes
        for _ in range(5):
            await controller.request("ml", "iris")

    asyncio.run(passes())
    # Then only the first pass acted, and nothing is scheduled for it: it is forgotten, not retried
    assert cluster.applied == 1
    assert controller.bodies.get(("ml", "iris")) is None
    assert not controller._timers


class StoredObject:
    """The apiserver's side of one ModelDeployment: it refuses a status write made from an older
    resourceVersion (409), as the real one does for the operator's precondition, and it can lose the
    answer to a write that it stored (a timeout while etcd was slow to confirm)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = copy.deepcopy(body)
        self.body["metadata"]["resourceVersion"] = "1"
        self.lose_next_answer = False
        self.always_conflict = False
        self.statuses: list[dict[str, Any]] = []  # the status writes it stored
        self.refused = 0
        self.reads = 0

    def bump(self) -> None:
        meta = self.body["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    def apply(self, md: Any, plan: Any) -> None:
        pass

    def write_status(self, md: Any, status: Any) -> dict[str, Any] | None:
        if md.status.wire() == status.wire():
            return None
        if self.always_conflict or md.metadata.resource_version != self.body["metadata"]["resourceVersion"]:
            self.refused += 1
            raise ApiException(status=409, reason="Conflict")
        self.body["status"] = status.wire()
        self.bump()
        self.statuses.append(status.wire())
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise TimeoutError("the apiserver did not answer in time")
        return copy.deepcopy(self.body)

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        return copy.deepcopy(self.body)

    def post_events(self, md: Any, events: Any, now: Any) -> None:
        pass


def synced_controller(stored: StoredObject, clock: list[datetime]) -> Controller:
    controller = Controller(stored, Settings(), clock=lambda: clock[0])  # type: ignore[arg-type]
    for resource in KINDS:
        controller.children.absent(resource, None)
    controller.seen("ml", "iris", copy.deepcopy(stored.body))
    return controller


def test_after_a_status_write_that_landed_unanswered_the_next_pass_decides_from_what_is_stored() -> None:
    # Given a first pass whose status write is stored but whose answer is lost, and a watch that has
    # not delivered it yet
    stored = StoredObject(md("1").model_dump(by_alias=True, mode="json", exclude_none=True))
    stored.lose_next_answer = True
    clock = [T0]
    controller = synced_controller(stored, clock)
    asyncio.run(controller.request("ml", "iris"))
    assert len(stored.statuses) == 1
    # When the retry runs 5 s later
    clock[0] = T0 + timedelta(seconds=5)
    asyncio.run(controller.request("ml", "iris"))
    # Then it read the object first, and found nothing to change: the rollout began once, at T0
    assert stored.reads == 1
    assert stored.refused == 0
    assert len(stored.statuses) == 1
    assert stored.body["status"]["progressStartedAt"] == "2026-11-27T12:00:00Z"


def test_a_status_write_from_an_older_version_is_refused_and_decided_again_from_the_stored_one() -> None:
    # Given an object another writer changed (an annotation) since the watch delivered it
    stored = StoredObject(md("1").model_dump(by_alias=True, mode="json", exclude_none=True))
    controller = synced_controller(stored, [T0])
    stored.bump()
    # When a pass writes status
    asyncio.run(controller.request("ml", "iris"))
    # Then the stale write was refused, and the same request read the object and wrote again from it
    assert stored.refused == 1
    assert stored.reads == 1
    assert len(stored.statuses) == 1
    assert stored.body["metadata"]["resourceVersion"] == "3"


def test_a_streak_of_conflicts_backs_off_instead_of_spinning() -> None:
    # Given an apiserver that refuses every status write as conflicting
    stored = StoredObject(md("1").model_dump(by_alias=True, mode="json", exclude_none=True))
    stored.always_conflict = True
    controller = synced_controller(stored, [T0])

    async def one_request() -> bool:
        await controller.request("ml", "iris")
        return ("ml", "iris") in controller._timers

    # When a pass is requested
    retry_scheduled = asyncio.run(one_request())
    # Then it decided again once at once, and then waits for a retry rather than looping
    assert stored.refused == 2
    assert retry_scheduled
