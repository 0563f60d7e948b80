"""The operator at scale: what it asks of the apiserver, counted by a proxy between the two.

An operator reads its children from informers' caches, so after its first lists it sends no GET and
no LIST per object, and a restart over objects already converged writes nothing. A watch that
expires (410 Gone, as after etcd compaction) is followed by a fresh list, and the cache then holds
what the apiserver holds, including what changed while the operator saw no events.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.support.counting_proxy import ApiProxy
from tests.support.k8s import (
    ENV,
    OperatorProcess,
    apply,
    get_json,
    kubectl,
    mdep_status,
    model_deployment,
    wait_for,
)

OBJECTS = 50
WRITES = {"create", "patch", "update", "delete"}


@dataclass
class ProxiedOperator(OperatorProcess):
    """`modelship run` whose kubeconfig points at the counting proxy."""

    kubeconfig: Path | None = None

    def start(self) -> ProxiedOperator:
        args = ["modelship", "run", *self.extra_args]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        env = {**ENV, "KUBECONFIG": str(self.kubeconfig)}
        self.proc = subprocess.Popen(args, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, env=env)
        return self


@pytest.fixture
def proxy(cluster: None, tmp_path: Path) -> Iterator[ApiProxy]:
    api_proxy = ApiProxy(Path(ENV["KUBECONFIG"])).start()
    yield api_proxy
    api_proxy.stop()


def proxied_operator(namespace: str, tmp_path: Path, proxy: ApiProxy) -> ProxiedOperator:
    op = ProxiedOperator([namespace], tmp_path / "proxied-operator.log")
    op.kubeconfig = proxy.kubeconfig(tmp_path / "proxy-kubeconfig.yaml")
    return cast(ProxiedOperator, op.with_metrics())  # with_metrics returns self, typed as the base class


@contextlib.contextmanager
def iris_served(
    namespace: str, tmp_path: Path, proxy: ApiProxy, steps: list[dict[str, Any]] | None = None
) -> Iterator[ProxiedOperator]:
    """An operator (through the proxy) serving iris version 1, Healthy; stopped afterwards."""
    op = proxied_operator(namespace, tmp_path, proxy).start()
    try:
        apply(namespace, model_deployment("iris", "1", replicas=2, steps=steps))
        wait_for("iris Healthy", lambda: mdep_status(namespace, "iris").get("phase") == "Healthy", 90)
        yield op
    finally:
        op.stop()


def all_healthy(namespace: str, count: int) -> bool:
    items = get_json("-n", namespace, "mdep")["items"]
    return len(items) == count and all((i.get("status") or {}).get("phase") == "Healthy" for i in items)


def all_settled(namespace: str, count: int, replicas: int) -> bool:
    """Every Deployment caught up with its spec with all pods Ready: nothing left to converge."""
    items = get_json("-n", namespace, "deployments")["items"]
    return len(items) == count and all(
        (d.get("status") or {}).get("observedGeneration", 0) >= d["metadata"]["generation"]
        and (d.get("status") or {}).get("readyReplicas", 0) == replicas
        for d in items
    )


def test_an_operator_restarted_over_50_converged_objects_sends_no_write_and_no_list_per_object(
    namespace: str, operator: OperatorProcess, proxy: ApiProxy, tmp_path: Path
) -> None:
    # Given 50 ModelDeployments, converged by an operator that is then stopped
    apply(namespace, *(model_deployment(f"m{i}", "1", replicas=1) for i in range(OBJECTS)))
    wait_for("50 Healthy", lambda: all_healthy(namespace, OBJECTS), timeout=240, interval=2)
    wait_for("50 Deployments settled", lambda: all_settled(namespace, OBJECTS, 1), timeout=120, interval=2)
    operator.stop()
    # When a new operator starts through the counting proxy and has looked at every object
    op = proxied_operator(namespace, tmp_path, proxy).start()
    try:
        op.wait_reconciled("all 50", at_least=OBJECTS, timeout=180)
        seen = proxy.verbs()
        listed = Counter(r.resource for r in proxy.since() if r.verb == "list")
    finally:
        op.stop()
    # Then it wrote nothing (no status, no child, no Event) and read nothing object by object:
    # one list per watched kind (ModelDeployments, Deployments, Pods, Services, HTTPRoutes)
    assert not WRITES & set(seen), seen
    assert seen["get"] == 0, seen
    assert set(listed) <= {"modeldeployments", "deployments", "pods", "services", "httproutes"}, listed
    assert max(listed.values()) == 1, listed
    # And every request carried a user agent, the operator's own for everything but kopf's watch
    agents = {r.user_agent.split("/")[0] for r in proxy.since()}
    assert agents <= {"modelship-operator", "kopf"}, agents


def test_a_watch_expired_while_events_were_lost_is_followed_by_a_relist_that_repairs_the_cache(
    namespace: str, proxy: ApiProxy, tmp_path: Path
) -> None:
    # Given an operator (through the proxy) serving iris version 1
    with iris_served(namespace, tmp_path, proxy):
        old_uid = get_json("-n", namespace, "service", "iris")["metadata"]["uid"]
        # When the operator stops receiving events, Service iris is deleted by hand, and then every
        # watch expires (410 Gone) the way etcd compaction expires them
        proxy.drop_watch_events()
        kubectl("-n", namespace, "delete", "service", "iris")
        mark = proxy.mark()
        proxy.expire_watches()

        # Then the operator lists again, sees the Service gone, and puts it back
        def recreated() -> bool:
            svc = get_json("-n", namespace, "services")["items"]
            return any(s["metadata"]["name"] == "iris" and s["metadata"]["uid"] != old_uid for s in svc)

        wait_for("Service iris recreated", recreated, timeout=60)
        assert proxy.verbs(mark)["list"] >= 1


def test_a_promote_missed_by_an_expired_model_deployment_watch_is_acted_on_after_the_relist(
    namespace: str, proxy: ApiProxy, tmp_path: Path
) -> None:
    # Given an operator (through the proxy) holding a canary of iris version 2 at a pause that only
    # a promote ends (no timer of the operator's own will look at it again)
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    with iris_served(namespace, tmp_path, proxy, steps):
        apply(namespace, model_deployment("iris", "2", replicas=2, steps=steps))
        wait_for("the canary paused", lambda: mdep_status(namespace, "iris").get("phase") == "Paused", 90)
        # When the operator's watches lose events, the user promotes, and then every watch expires
        # (410 Gone): the ModelDeployments' watch, which kopf runs, as well as the children's
        proxy.drop_watch_events()
        kubectl("-n", namespace, "annotate", "--overwrite", "mdep", "iris", "modelship.dev/promote=p1")
        mark = proxy.mark()
        proxy.expire_watches()
        # Then the fresh list shows the promote, and the operator acts on it
        wait_for(
            "iris promoted to version 2",
            lambda: mdep_status(namespace, "iris").get("stableVersion") == "2",
            timeout=60,
        )
        lists = {r.resource for r in proxy.since(mark) if r.verb == "list"}
        assert "modeldeployments" in lists, lists


def test_an_object_deleted_while_its_watch_lost_events_costs_a_few_writes_not_a_storm(
    namespace: str, proxy: ApiProxy, tmp_path: Path
) -> None:
    # Given an operator (through the proxy) serving iris version 1
    with iris_served(namespace, tmp_path, proxy) as op:
        # When iris is deleted while the watches lose events, and then every watch expires: the
        # relist does not contain iris, and nothing says it was deleted
        proxy.drop_watch_events()
        kubectl("-n", namespace, "delete", "mdep", "iris")
        mark = proxy.mark()
        proxy.expire_watches()
        # Then the operator forgets iris at its first pass that finds it gone, and its children go
        # (the garbage collector takes them: their owner's uid no longer exists)
        wait_for("the operator forgot iris", lambda: "gone from the apiserver" in op.log(), 60)
        wait_for("iris's Deployments gone", lambda: not get_json("-n", namespace, "deployments")["items"], 60)
        # And that cost a handful of writes, where passes on the deleted object used to re-create its
        # children for the garbage collector to delete again (786 writes in 30 s)
        writes = [r for r in proxy.since(mark) if r.verb in WRITES]
        assert len(writes) <= 10, Counter((r.verb, r.resource) for r in writes)
