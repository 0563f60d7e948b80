"""The operator's informer against the real apiserver, through a proxy that silences its watch: the
watch that replaces a silent one starts after the last event the informer handed over, so the cache
never goes back to an older state of an object.

(A fault test found the opposite: after silent watches, a promotion was sized from a Deployment as
it had been minutes before, and stable lost Ready pods.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import config

from modelship.informer import Informer, Obj, Resource, WatchTimeouts
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import LocalCluster
from tests.support.k8s import ENV, apply, kubectl, wait_for

SHARED = LocalCluster("modelship", ENV)
CONFIGMAPS = Resource("ConfigMap", "", "v1", "configmaps")
LABEL = "modelship.dev/informer-test=yes"
# A watch silent for this long is given up by the informer's client.
CLIENT_TIMEOUT = 3


@dataclass
class RecordingSink:
    """Every resourceVersion the informer hands over, per object, in order."""

    seen: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, resource: Resource, namespace: str | None, items: list[Obj]) -> None:
        for obj in items:
            self.upsert(resource, obj)

    def upsert(self, resource: Resource, obj: Obj) -> None:
        with self.lock:
            self.seen.setdefault(obj["metadata"]["name"], []).append(obj["metadata"]["resourceVersion"])

    def delete(self, resource: Resource, obj: Obj) -> None:
        self.upsert(resource, obj)

    def absent(self, resource: Resource, namespace: str | None) -> None:
        pass

    def last(self, name: str) -> str | None:
        with self.lock:
            return (self.seen.get(name) or cast(list[str | None], [None]))[-1]


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    proxy = FaultProxy(SHARED.server, SHARED.directory / "pki").start()
    yield proxy
    proxy.stop()


@pytest.fixture
def informer(namespace: str, proxy: FaultProxy, tmp_path: Path) -> Iterator[tuple[Informer, RecordingSink]]:
    kubeconfig = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    sink = RecordingSink()
    timeouts = WatchTimeouts(server=60, client=CLIENT_TIMEOUT, backoff_min=0.1, backoff_max=1)
    # the kubernetes client has no type hints
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    informer = Informer(api, CONFIGMAPS, namespace, LABEL, sink, timeouts=timeouts)
    informer.start()
    yield informer, sink
    informer.stop()


def write_config_map(namespace: str, value: str) -> str:
    """Creates or updates the labelled ConfigMap `a`; returns its new resourceVersion."""
    key, label = LABEL.split("=")
    metadata = {"name": "a", "labels": {key: label}}
    apply(
        namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"value": value}}
    )
    return kubectl("-n", namespace, "get", "configmap", "a", "-o=jsonpath={.metadata.resourceVersion}")


def watch_versions(proxy: FaultProxy, since: float) -> list[str]:
    """The resourceVersion each configmap watch opened since `since` started from."""
    return [
        parse_qs(urlsplit(r.path).query)["resourceVersion"][0]
        for r in proxy.forwarded_since(since)
        if r.watch and "configmaps" in r.path
    ]


def test_a_watch_that_replaces_a_silent_one_resumes_after_the_last_event_seen(
    namespace: str, informer: tuple[Informer, RecordingSink], proxy: FaultProxy
) -> None:
    _, sink = informer
    # Given an informer that has seen a ConfigMap change three times over its watch
    for value in ("1", "2", "3"):
        version = write_config_map(namespace, value)
        wait_for(
            f"the informer to see version {version}",
            cast(Callable[[], bool], lambda v=version: sink.last("a") == v),
            30,
        )
    last_seen = sink.last("a")
    # When its watch goes silent without closing, and the object changes meanwhile
    with proxy.holding_watches():
        held_at = time.monotonic()
        changed = write_config_map(namespace, "4")
        # Then the informer gives the silent watch up and opens a new one that starts after the last
        # event it handed over, not where the silent watch began
        resumed = wait_for(
            "a new configmap watch", lambda: watch_versions(proxy, held_at), CLIENT_TIMEOUT + 30
        )
    assert resumed[0] == last_seen
    # And the change made meanwhile arrives, with no older state of the object handed over again
    wait_for(f"the informer to see version {changed}", lambda: sink.last("a") == changed, 30)
    versions = sink.seen["a"]
    assert len(versions) == len(set(versions)), f"states handed over twice: {versions}"
