"""A model on the real node under steady client load: its manifest, its first version, and the
waits and checks the stories under load share."""

from __future__ import annotations

from typing import Any

from hack.traffic import LoadGenerator, sample_versions
from tests.e2e.support import (
    cluster_ip,
    model_host,
    on_real_node,
    sha256_hex,
    wait_answering,
    wait_ready_on_real_node,
)
from tests.support.k8s import apply, kubectl, mdep_status, wait_for

NAME = "iris"


def manifest(
    base_url: str, version: str, model: bytes, replicas: int, steps: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    rollout: dict[str, Any] = {"progressDeadlineSeconds": 90}
    if steps is not None:
        rollout["canary"] = {"steps": steps}
    return {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"version": version, "uri": f"{base_url}/iris.skops", "sha256": sha256_hex(model)},
            "replicas": replicas,
            "rollout": rollout,
            "serving": on_real_node(),
        },
    }


def status_is(ns: str, **fields: Any) -> dict[str, Any] | None:
    status = mdep_status(ns, NAME)
    return status if all(status.get(k) == v for k, v in fields.items()) else None


def wait_status(ns: str, what: str, timeout: float = 180, **fields: Any) -> dict[str, Any]:
    return wait_for(what, lambda: status_is(ns, **fields), timeout=timeout)


def serve_v1(ns: str, model: bytes, replicas: int, steps: list[dict[str, Any]] | None = None) -> str:
    """Version 1 Healthy on the real node; returns the model host's URL."""
    base = model_host(ns, {"iris.skops": model})
    apply(ns, manifest(base, "v1", model, replicas, steps))
    wait_status(ns, "v1 Healthy", phase="Healthy", stableVersion="v1")
    wait_ready_on_real_node(ns, f"modelship.dev/model-deployment={NAME}", replicas)
    wait_answering(cluster_ip(ns, NAME), NAME)
    return base


def wait_pods_gone(ns: str, version: str) -> None:
    """Until the version's pods are gone: terminated, their connections drained."""
    selector = f"modelship.dev/model-deployment={NAME},modelship.dev/version={version}"
    wait_for(
        f"{version}'s pods gone",
        lambda: not kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "name"),
        timeout=120,
    )


def wait_more_answers(load: LoadGenerator, version: str, more: int = 200) -> None:
    before = load.snapshot().by_version[version]
    wait_for(
        f"{more} more answers from {version}", lambda: load.snapshot().by_version[version] >= before + more
    )


def wait_canary_answering(ns: str) -> None:
    """Until new connections reach v2. Fresh connections, not the load's: a keep-alive connection
    stays with the pod it was opened to, so the canary gets only connections opened after it."""
    ip = cluster_ip(ns, NAME)
    wait_for(
        "the canary answering new connections", lambda: sample_versions(ip, NAME, 20)["v2"] > 0, timeout=120
    )


def assert_no_failures(gen: LoadGenerator, versions: set[str]) -> None:
    report = gen.snapshot()
    assert report.failed == 0, f"clients saw failed requests: {report}"
    assert report.ok > 0, "the load generator got no answer at all"
    assert set(report.by_version) <= versions, f"answers from unexpected versions: {report}"
