"""What the operator saw of a ModelDeployment's children, boiled down to what decisions need.

`observe_children()` is pure: it takes the raw Deployments, Pods and Services (dicts, as the API
serves them) and returns an `Observed`, so the reconciler never touches API objects directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelship.children import ANNOTATION_SPEC_HASH, LABEL_VERSION

# A container that has restarted this often, or is waiting in CrashLoopBackOff, is crash-looping.
CRASH_RESTARTS = 3
CRASH_REASONS = frozenset({"CrashLoopBackOff", "Error", "CreateContainerConfigError", "ImagePullBackOff"})


@dataclass(frozen=True)
class VersionState:
    """One version's Deployment as last seen."""

    version: str
    spec_hash: str | None
    replicas: int
    ready: int
    updated: int
    settled: bool
    crash_looping: int = 0
    # The last line a crash-looping pod's server wrote before it exited, when there is one.
    crash_reason: str | None = None

    def fully_ready(self, want: int) -> bool:
        """True when `want` pods of the current template are Ready and the Deployment
        controller has caught up with the latest spec (so `ready` is not stale)."""
        return self.settled and self.replicas == want and self.updated >= want and self.ready >= want


@dataclass(frozen=True)
class Observed:
    versions: dict[str, VersionState] = field(default_factory=dict)
    # Content hash of each other owned object, keyed "Kind/name" (Services, the HTTPRoute).
    hashes: dict[str, str | None] = field(default_factory=dict)

    def ready(self, version: str | None) -> int:
        state = self.versions.get(version or "")
        return state.ready if state else 0


def _int(obj: dict[str, Any], *path: str) -> int:
    value: Any = obj
    for key in path:
        value = (value or {}).get(key)
    return int(value or 0)


# Enough for the server's one-line reasons (a URI, an error from the store) and no more: it goes into
# status.message, which is bounded.
CRASH_REASON_CHARS = 300


def _crash_reason(pod: dict[str, Any]) -> str | None:
    """The last non-empty line of the last terminated container's message (with
    terminationMessagePolicy FallbackToLogsOnError: the tail of its log)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        lines = [line.strip() for line in (terminated.get("message") or "").splitlines() if line.strip()]
        if lines:
            reason = lines[-1]
            return reason if len(reason) <= CRASH_REASON_CHARS else reason[: CRASH_REASON_CHARS - 3] + "..."
    return None


def _crash_looping(pod: dict[str, Any]) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if status.get("restartCount", 0) >= CRASH_RESTARTS or waiting.get("reason") in CRASH_REASONS:
            return True
    return False


def essentials(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of a child that `observe_children` reads, and nothing else: what the operator's
    cache keeps of each watched object. A pod's spec or a Deployment's template is most of its size
    and no decision reads it; kept whole, thousands of them would be most of the operator's memory.
    (List items come without `kind`; it is set here.)"""
    meta = obj.get("metadata") or {}
    kept_meta = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "generation", "labels", "annotations")
        if k in meta
    }
    if meta.get("deletionTimestamp"):
        kept_meta["deletionTimestamp"] = meta["deletionTimestamp"]
    kept_meta["ownerReferences"] = [{"uid": r.get("uid")} for r in meta.get("ownerReferences") or []]
    slim: dict[str, Any] = {"kind": kind, "metadata": kept_meta}
    status = obj.get("status") or {}
    if kind == "Deployment":
        slim["spec"] = {"replicas": (obj.get("spec") or {}).get("replicas")}
        slim["status"] = {
            k: status[k]
            for k in ("readyReplicas", "updatedReplicas", "observedGeneration", "replicas")
            if k in status
        }
    elif kind == "Pod":
        slim["status"] = {
            "containerStatuses": [
                {
                    "restartCount": s.get("restartCount", 0),
                    "state": {"waiting": (s.get("state") or {}).get("waiting")},
                    "lastState": {"terminated": _terminated_message(s)},
                }
                for s in status.get("containerStatuses") or []
            ]
        }
    return slim


def _terminated_message(container_status: dict[str, Any]) -> dict[str, str] | None:
    terminated = (container_status.get("lastState") or {}).get("terminated") or {}
    message = terminated.get("message")
    # The tail only: the message can hold up to 4 KiB of log per container.
    return {"message": message[-2 * CRASH_REASON_CHARS :]} if message else None


def observe_children(
    deployments: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]] = (),
    others: Iterable[dict[str, Any]] = (),
) -> Observed:
    crashing: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for pod in pods:
        version = (pod.get("metadata", {}).get("labels") or {}).get(LABEL_VERSION)
        if version and not pod["metadata"].get("deletionTimestamp") and _crash_looping(pod):
            crashing[version] = crashing.get(version, 0) + 1
            reason = _crash_reason(pod)
            if reason is not None:
                reasons.setdefault(version, reason)
    versions = {}
    for dep in deployments:
        meta = dep.get("metadata", {})
        version = (meta.get("labels") or {}).get(LABEL_VERSION)
        if not version:
            continue
        versions[version] = VersionState(
            version=version,
            spec_hash=(meta.get("annotations") or {}).get(ANNOTATION_SPEC_HASH),
            replicas=_int(dep, "spec", "replicas"),
            ready=_int(dep, "status", "readyReplicas"),
            updated=_int(dep, "status", "updatedReplicas"),
            settled=_int(dep, "status", "observedGeneration") >= int(meta.get("generation") or 0),
            crash_looping=crashing.get(version, 0),
            crash_reason=reasons.get(version),
        )
    hashes = {
        f"{obj['kind']}/{obj['metadata']['name']}": (obj["metadata"].get("annotations") or {}).get(
            ANNOTATION_SPEC_HASH
        )
        for obj in others
    }
    return Observed(versions=versions, hashes=hashes)
