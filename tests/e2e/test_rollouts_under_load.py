"""Rollouts on the real node under steady client load: no client sees a failed request.

Each test runs the built serving image on the real node, sends 200 requests a second through the
Service's ClusterIP on 16 keep-alive connections for the whole rollout, and asserts that every one
of them was answered with a 2xx. The counts are printed (run pytest with -s to see them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from hack.traffic import sample_versions, steady_load
from tests.e2e.load_support import (
    NAME,
    assert_no_failures,
    manifest,
    serve_v1,
    wait_canary_answering,
    wait_more_answers,
    wait_pods_gone,
    wait_status,
)
from tests.e2e.support import binomial_bound, cluster_ip, ready_pods
from tests.support.k8s import OperatorProcess, apply, get_json, kubectl, mdep_status, wait_for


def test_a_switch_from_v1_to_v2_under_load_fails_no_request(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    # Given v1 Healthy on 3 pods and 200 req/s of clients
    base = serve_v1(namespace, iris_model, 3)
    with steady_load(cluster_ip(namespace, NAME), NAME) as load:
        wait_for("answers from v1", lambda: load.snapshot().by_version["v1"] > 200, timeout=60)
        # When the spec moves to v2 (no canary steps: a switch once v2 is Ready)
        apply(namespace, manifest(base, "v2", iris_model, 3))
        wait_status(namespace, "v2 Healthy", phase="Healthy", stableVersion="v2")
        # And the old pods are gone, their connections drained
        wait_pods_gone(namespace, "v1")
        wait_more_answers(load, "v2")
        # Then every request got a 2xx, and clients now reach v2 only
        assert_no_failures(load, {"v1", "v2"})
    assert load.report.by_version["v2"] > 0


def test_a_canary_walked_to_promotion_under_load_fails_no_request(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 34},
        {"pause": {"duration": "5s"}},
        {"setWeight": 67},
        {"pause": {"duration": "5s"}},
    ]
    # Given v1 Healthy on 3 pods and steady client load
    base = serve_v1(namespace, iris_model, 3, steps)
    with steady_load(cluster_ip(namespace, NAME), NAME) as load:
        # When v2 is rolled out as a canary through its steps to promotion
        apply(namespace, manifest(base, "v2", iris_model, 3, steps))
        wait_canary_answering(namespace)
        wait_status(namespace, "v2 promoted", phase="Healthy", stableVersion="v2")
        wait_pods_gone(namespace, "v1")
        # Then no client request failed at any step
        assert_no_failures(load, {"v1", "v2"})


def test_an_aborted_canary_under_load_fails_no_request(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    # Given a canary of v2 waiting for a promote at 50%, under steady client load
    base = serve_v1(namespace, iris_model, 2, steps)
    with steady_load(cluster_ip(namespace, NAME), NAME) as load:
        apply(namespace, manifest(base, "v2", iris_model, 2, steps))
        wait_status(namespace, "the canary paused", phase="Paused", canaryVersion="v2")
        wait_canary_answering(namespace)
        # When the user aborts it
        kubectl("-n", namespace, "annotate", "--overwrite", "mdep", NAME, "modelship.dev/abort=e2e-1")
        wait_pods_gone(namespace, "v2")
        wait_more_answers(load, "v1")
        # Then traffic is back on v1 and no request failed
        assert_no_failures(load, {"v1", "v2"})
    assert mdep_status(namespace, NAME)["stableVersion"] == "v1"


def test_a_version_whose_model_fails_its_digest_is_rolled_back_under_load_failing_no_request(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    # Given v1 Healthy under steady client load
    base = serve_v1(namespace, iris_model, 2, steps)
    with steady_load(cluster_ip(namespace, NAME), NAME) as load:
        # When v2 names a digest its model file does not have (its pods can never load it)
        bad = manifest(base, "v2", iris_model, 2, steps)
        bad["spec"]["model"]["sha256"] = "0" * 64
        apply(namespace, bad)
        # Then the operator rolls it back by itself, and stable v1 served every request meanwhile
        status = wait_status(namespace, "v2 rolled back", phase="Degraded", stableVersion="v1")
        assert "v2" in str(status.get("message", "")) or status.get("failedVersion") == "v2", status
        wait_more_answers(load, "v1")
        assert_no_failures(load, {"v1"})


def test_the_ready_pod_canary_splits_real_requests_by_its_weight(
    namespace: str, operator: OperatorProcess, real_node: str, iris_model: bytes
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    # Given v1 on 10 replicas and a canary of v2 at 20%, then 50%
    base = serve_v1(namespace, iris_model, 10, steps)
    apply(namespace, manifest(base, "v2", iris_model, 10, steps))
    ip = cluster_ip(namespace, NAME)
    for index, weight in ((1, 20), (3, 50)):
        wait_status(namespace, f"paused at {weight}%", phase="Paused", currentStepIndex=index)
        wait_for(
            f"{weight}% of 10 Ready pods on v2",
            cast(
                Callable[[], bool],
                lambda w=weight: (
                    len_ready(namespace, "v2") == w // 10 and len_ready(namespace, "v1") == 10 - w // 10
                ),
            ),
        )
        # And the Service's endpoints say the same (kube-proxy routes by them; under load they lag the pods)
        wait_for(
            f"the Service's ready endpoints at {weight}% v2",
            cast(
                Callable[[], bool],
                lambda w=weight: ready_endpoints(namespace) == {"v1": 10 - w // 10, "v2": w // 10},
            ),
        )
        # When 400 requests each open their own connection (kube-proxy picks a pod per connection)
        n = 400
        counts = sample_versions(ip, NAME, n)
        # Then the canary's share of answers is within the binomial bound of its weight
        share = counts["v2"] / n
        bound = binomial_bound(n, weight / 100)
        print(
            f"weight {weight}%: {counts['v2']}/{n} answers from v2 (share {share:.3f}, bound +-{bound:.3f})"
        )
        assert abs(share - weight / 100) <= bound, (weight, dict(counts))
        kubectl(
            "-n", namespace, "annotate", "--overwrite", "mdep", NAME, f"modelship.dev/promote=split-{index}"
        )


def ready_endpoints(ns: str) -> dict[str, int]:
    """Ready endpoints of the model's Service, counted by the version of the pod behind each."""
    versions = {
        p["status"].get("podIP"): p["metadata"]["labels"].get("modelship.dev/version")
        for p in get_json("-n", ns, "pods", "-l", f"modelship.dev/model-deployment={NAME}")["items"]
    }
    slices = get_json("-n", ns, "endpointslices", "-l", f"kubernetes.io/service-name={NAME}")["items"]
    counts: dict[str, int] = {}
    for endpoint in (e for sl in slices for e in sl.get("endpoints") or []):
        if (endpoint.get("conditions") or {}).get("ready"):
            for address in endpoint.get("addresses") or []:
                version = versions.get(address)
                if version:
                    counts[version] = counts.get(version, 0) + 1
    return counts


def len_ready(ns: str, version: str) -> int:
    return len(ready_pods(ns, f"modelship.dev/model-deployment={NAME},modelship.dev/version={version}"))
