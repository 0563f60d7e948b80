"""ModelDeployments captured live, in each state Argo CD must tell apart, by driving the operator.

One walk through a rollout's life gives every state, so it runs once per session:

  unobserved        just created; the operator has not written status (kubectl create's answer)
  healthy           v1 stable
  generation-ahead  v2 just applied; status still describes generation 1 (kubectl apply's answer)
  paused            v2 at 50%, waiting at a pause without duration for a promote
  promoted          v2 stable, after the Argo CD promote action's patch was sent
  progressing       v3 (never Ready) waiting for its canary pods
  degraded          v3 rolled back automatically after its progress deadline
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from tests.argocd import argocd_lua
from tests.support.k8s import (
    OperatorProcess,
    apply,
    delete_namespace,
    get_json,
    kubectl,
    model_deployment,
    new_namespace,
    wait_for,
)

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
NEVER_READY = {"stage.modelship.dev/never-ready": "true"}


@dataclass
class Captured:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    promote_patch: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, state: str) -> dict[str, Any]:
        return self.states[state]


def _md(version: str, **kwargs: Any) -> dict[str, Any]:
    return model_deployment("iris", version, replicas=2, steps=STEPS, **kwargs)


def _live(ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = get_json("-n", ns, "mdep", "iris")
    return obj


def _when(ns: str, what: str, timeout: float = 60, **status: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = _live(ns)
        seen = obj.get("status") or {}
        return obj if all(seen.get(k) == v for k, v in status.items()) else None

    return wait_for(what, probe, timeout)


def _walk(ns: str, captured: Captured) -> None:
    # Given a new ModelDeployment, as the apiserver answered its creation
    created = kubectl(
        "-n", ns, "create", "-o", "json", "-f", "-", input=yaml.safe_dump(_md("v1", deadline=30))
    )
    captured.states["unobserved"] = json.loads(created)
    captured.states["healthy"] = _when(ns, "v1 Healthy", phase="Healthy", stableVersion="v1")
    # When v2 is applied: the answer carries generation 2 and the status of generation 1
    applied = kubectl(
        "-n", ns, "apply", "-o", "json", "-f", "-", input=yaml.safe_dump(_md("v2", deadline=30))
    )
    captured.states["generation-ahead"] = json.loads(applied)
    paused = _when(ns, "v2 waiting for a promote", phase="Paused", canaryVersion="v2", currentStepIndex=1)
    captured.states["paused"] = paused
    # When Argo CD's promote action runs on it, and its merge patch is sent as Argo CD sends it
    captured.promote_patch = argocd_lua.merge_patch(paused, argocd_lua.action("promote", paused))
    kubectl("-n", ns, "patch", "mdep", "iris", "--type", "merge", "-p", json.dumps(captured.promote_patch))
    captured.states["promoted"] = _when(ns, "v2 Healthy", phase="Healthy", stableVersion="v2")
    # When v3 never becomes Ready: first Progressing, then rolled back at the 15s deadline
    apply(ns, _md("v3", deadline=15, pod_labels=NEVER_READY))
    captured.states["progressing"] = _when(
        ns, "v3 waiting for its pods", phase="Progressing", canaryVersion="v3"
    )
    captured.states["degraded"] = _when(ns, "v3 rolled back", 90, phase="Degraded", failedVersion="v3")


@pytest.fixture(scope="session")
def captured(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    ns = new_namespace("argocd-lua")
    op = OperatorProcess([ns], tmp_path_factory.mktemp("argocd") / "operator.log").start()
    captured = Captured()
    try:
        try:
            _walk(ns, captured)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- operator log ({ns}) ---\n{op.log()[-6000:]}") from exc
        yield captured
    finally:
        op.stop()
        delete_namespace(ns)
