"""The soak's ModelDeployments: how they are written, and what each should settle on.

A version's name says how its pods behave (`7-ok`, `8-slow`, `9-never`, `10-crash`), and the pod
labels that make kwok play that behaviour follow from the name. So the expected end state is
computed from the spec actually stored, not from what the driver believes it sent: an edit that
timed out during an apiserver restart may or may not have landed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tests.support.k8s import model_deployment

# kwok stages (hack/kwok_stages.py), by the behaviour named in the version.
POD_LABELS: dict[str, dict[str, str]] = {
    "ok": {},
    "slow": {"stage.modelship.dev/slow-ready": "true"},
    "never": {"stage.modelship.dev/never-ready": "true"},
    "crash": {"stage.modelship.dev/crash": "true"},
}
GOOD = ("ok", "slow")
STEP_PLANS: list[list[dict[str, Any]]] = [
    [{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {}}],
    [{"setWeight": 50}, {"pause": {}}],
    [{"setWeight": 20}, {"pause": {"duration": "3s"}}, {"setWeight": 60}],
    [],  # no steps: a blue-green switch
]
# Long enough that kwok pods held up by a control-plane fault still make it; a never-Ready
# version fails when it runs out.
DEADLINE_SECONDS = 60


def behaviour(version: str) -> str:
    return version.rsplit("-", 1)[-1]


def manifest(name: str, version: str, replicas: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    doc = model_deployment(
        name,
        version,
        replicas,
        steps=steps,
        pod_labels=POD_LABELS[behaviour(version)] or None,
        deadline=DEADLINE_SECONDS,
    )
    # Kept versions are what "back to stable" and retries go to; two keep the pod count small.
    doc["spec"]["revisionHistoryLimit"] = 2
    return doc


def first_manifest(rng: random.Random, name: str) -> dict[str, Any]:
    return manifest(name, "1-ok", rng.randint(2, 4), rng.choice(STEP_PLANS))


def version_patch(version: str) -> dict[str, Any]:
    """A merge patch to `version`, with the pod labels its name asks for (null removes the others)."""
    labels: dict[str, str | None] = {k: None for v in POD_LABELS.values() for k in v}
    labels.update(POD_LABELS[behaviour(version)])
    return {"spec": {"model": {"version": version}, "serving": {"podLabels": labels}}}


@dataclass(frozen=True)
class Settled:
    """Whether an object is where the engine's rules say it should end, and why not."""

    ok: bool
    why: str


def settled(obj: dict[str, Any], may_fail: bool) -> Settled:
    """Healthy on the version in spec; or Degraded with it as the failed version when its pods
    never work, or when an abort or a crashed canary pod since the last edit may have failed it."""
    spec, status = obj["spec"], obj.get("status") or {}
    version = spec["model"]["version"]
    phase, stable, failed = status.get("phase"), status.get("stableVersion"), status.get("failedVersion")
    seen = f"phase {phase}, stable {stable}, failed {failed}: {status.get('message', '')[:160]}"
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return Settled(
            False,
            f"observedGeneration {status.get('observedGeneration')} "
            f"!= generation {obj['metadata']['generation']}; {seen}",
        )
    healthy = phase == "Healthy" and stable == version and not status.get("canaryVersion")
    rolled_back = phase == "Degraded" and failed == version and stable != version
    if behaviour(version) not in GOOD:
        return Settled(rolled_back, f"version {version} cannot work, expected it rolled back; {seen}")
    if may_fail:
        return Settled(healthy or rolled_back, f"expected {version} Healthy or rolled back; {seen}")
    return Settled(healthy, f"expected Healthy on {version}; {seen}")
