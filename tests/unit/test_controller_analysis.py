"""The controller measures what the engine says is due and writes it to status in the same pass.

A fake cluster stands in for the apiserver's writes, and the children are put into the controller's
own cache as its informers' first lists would deliver them (the integration tests use a real
apiserver); the measuring is the real modelship.prometheus, here without a Prometheus address, so
every query is an Error.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from prometheus_client import REGISTRY

from modelship import api
from modelship.api import Phase, Verdict
from modelship.child_cache import DEPLOYMENTS, HTTPROUTES, KINDS, SELECTOR, SERVICES
from modelship.children import ANNOTATION_SPEC_HASH, LABEL_VERSION
from modelship.controller import Controller
from modelship.observation import Observed
from modelship.settings import Settings

from .builders import later
from .test_reconcile_analysis import gated, start

# A pass that regresses into waiting (an unsynced cache, a query that never returns) fails here, fast.
PASS_TIMEOUT_SECONDS = 10
Obj = dict[str, Any]


class OneObjectCluster:
    """The apiserver's side of one ModelDeployment's writes: status is stored (with a new
    resourceVersion) only when it changed, as `Cluster.write_status` does; events are recorded."""

    def __init__(self, md: api.ModelDeployment) -> None:
        self.body = md.model_dump(by_alias=True, mode="json", exclude_none=True)
        self.body["metadata"]["resourceVersion"] = "1"
        self.statuses: list[api.ModelDeploymentStatus] = []
        self.events: list[Any] = []

    def apply(self, md: Any, plan: Any) -> None:
        pass

    def write_status(self, md: api.ModelDeployment, status: api.ModelDeploymentStatus) -> Obj | None:
        if status.wire() == md.status.wire():
            return None
        self.statuses.append(status)
        self.body = copy.deepcopy(self.body)
        self.body["status"] = status.wire()
        self.body["metadata"]["resourceVersion"] = str(int(self.body["metadata"]["resourceVersion"]) + 1)
        return self.body

    def post_events(self, md: Any, events: Any, now: Any) -> None:
        self.events += events


def _meta(md: api.ModelDeployment, name: str, spec_hash: str | None, version: str | None = None) -> Obj:
    labels = {SELECTOR: md.metadata.name} | ({LABEL_VERSION: version} if version else {})
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "resourceVersion": "1",
        "generation": 1,
        "labels": labels,
        "annotations": {ANNOTATION_SPEC_HASH: spec_hash} if spec_hash else {},
        "ownerReferences": [{"uid": md.metadata.uid}],
    }


def children_of(md: api.ModelDeployment, observed: Observed) -> dict[str, list[Obj]]:
    """The child objects, by kind, from which the cache observes `observed` (no crash-looping pods)."""
    by_kind: dict[str, list[Obj]] = {r.kind: [] for r in KINDS}
    for version, state in observed.versions.items():
        by_kind[DEPLOYMENTS.kind].append(
            {
                "kind": DEPLOYMENTS.kind,
                "metadata": _meta(md, f"{md.metadata.name}-{version}", state.spec_hash, version),
                "spec": {"replicas": state.replicas},
                "status": {
                    "readyReplicas": state.ready,
                    "updatedReplicas": state.updated,
                    "observedGeneration": 1 if state.settled else 0,
                },
            }
        )
    for key, spec_hash in observed.hashes.items():
        kind, _, name = key.partition("/")
        assert kind in (SERVICES.kind, HTTPROUTES.kind), key
        by_kind[kind].append({"kind": kind, "metadata": _meta(md, name, spec_hash)})
    return by_kind


def controller_seeing(
    cluster: OneObjectCluster, md: api.ModelDeployment, settings: Settings, seconds: float
) -> Controller:
    """A controller at `later(seconds)` that has seen `md` from the watch."""
    controller = Controller(cluster, settings, clock=lambda: later(seconds))  # type: ignore[arg-type]
    controller.seen(md.metadata.namespace, md.metadata.name, cluster.body)
    return controller


async def start_up(controller: Controller, md: api.ModelDeployment, observed: Observed) -> None:
    """As when the operator starts: the watch's pass waits for the informers' first lists, which
    deliver the children (and ask for passes of their own, which coalesce into it)."""
    ns, name = md.metadata.namespace, md.metadata.name
    watch_pass = asyncio.ensure_future(controller.request(ns, name))
    objects = children_of(md, observed)
    for resource in KINDS:
        controller.children.replace(resource, None, objects[resource.kind])
    # The fake objects must say to the cache exactly what the engine's walk left.
    assert controller.children.observe(md) == observed
    await asyncio.wait_for(watch_pass, PASS_TIMEOUT_SECONDS)


def test_a_due_check_is_measured_and_recorded_in_the_same_pass() -> None:
    # Given a canary at an analysis step whose first measurement is due at t=31 s, and no Prometheus
    current, obs = start(gated(consecutiveErrorLimit=0))
    cluster = OneObjectCluster(current)
    controller = controller_seeing(cluster, current, Settings(prometheus_url=""), 31)
    # When the controller reconciles it
    asyncio.run(start_up(controller, current, obs))
    # Then one status write records the Error measurement, saying how to configure Prometheus
    (status,) = cluster.statuses
    (record,) = status.analysis_runs[0].checks
    (measurement,) = record.measurements
    assert (measurement.verdict, measurement.measured_at) == (Verdict.ERROR, later(31))
    assert "--prometheus-url" in measurement.message
    # And the error holds the rollout (consecutiveErrorLimit 0), with an Event for the verdict
    assert status.phase == Phase.PAUSED
    assert "CheckError" in [e.reason for e in cluster.events]


def test_each_measurement_is_counted_by_check_and_verdict() -> None:
    # Given a canary whose analysis check is due, and no Prometheus
    current, obs = start(gated())
    current.metadata.namespace = "metrics-test"
    controller = controller_seeing(OneObjectCluster(current), current, Settings(), 31)
    labels = {"namespace": "metrics-test", "name": "iris", "check": "errors", "verdict": "Error"}
    before = REGISTRY.get_sample_value("modelship_analysis_measurements_total", labels) or 0.0
    # When the controller reconciles it
    asyncio.run(start_up(controller, current, obs))
    # Then the operator's metric counts one Error of check errors
    assert REGISTRY.get_sample_value("modelship_analysis_measurements_total", labels) == before + 1
