"""All writes to the Kubernetes API, and the client they go through.

Reads mostly do not happen here: a pass reads the ModelDeployment as the watch delivered it and its
children from the informers' cache (`child_cache.py`), so a reconcile sends no GET and no LIST.
The exception is `read`, after a status write whose outcome is unknown or refused as stale.

Writes are idempotent: server-side apply for whole objects, merge patches for replica counts,
"not found" on delete counts as done. The status writer sends a patch only when the status
really changed, so a ModelDeployment at rest costs no writes, and only if the object is still the
version the pass decided from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelship import api
from modelship.engine import Event, Plan
from modelship.ratelimit import TokenBucket, limit_requests

log = logging.getLogger(__name__)
FIELD_MANAGER = "modelship"
GATEWAY = ("gateway.networking.k8s.io", "v1")
APPLY = "application/apply-patch+yaml"


def load_kube_config() -> None:
    """In a pod, the service account; elsewhere, KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def user_agent() -> str:
    """How the apiserver (its audit log, its metrics, a proxy) tells the operator's requests apart."""
    try:
        return f"modelship-operator/{version('modelship-operator')}"
    except PackageNotFoundError:
        return "modelship-operator/unknown"


def make_api_client(qps: float, burst: int) -> client.ApiClient:
    """The operator's API client: its own user agent, and at most `qps` requests a second after a
    burst of `burst` (every call waits for a token, as client-go's rate limiter does)."""
    api_client = client.ApiClient()
    api_client.user_agent = user_agent()
    limit_requests(api_client, TokenBucket(qps, burst))
    return api_client


class Cluster:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    # -- writing -------------------------------------------------------------------------------
    def apply(self, md: api.ModelDeployment, plan: Plan) -> None:
        ns = md.metadata.namespace
        for obj in plan.apply:
            self._server_side_apply(obj)
        for name, replicas in plan.scale.items():
            try:
                self.apps.patch_namespaced_deployment(
                    name, ns, {"spec": {"replicas": replicas}}, field_manager=FIELD_MANAGER
                )
            except ApiException as exc:
                _raise_unless_not_found(exc)
        for kind, name in plan.delete:
            try:
                if kind == "Deployment":
                    self.apps.delete_namespaced_deployment(name, ns, propagation_policy="Background")
                elif kind == "Service":
                    self.core.delete_namespaced_service(name, ns)
                elif kind == "HTTPRoute":
                    self.custom.delete_namespaced_custom_object(*GATEWAY, ns, "httproutes", name)
            except ApiException as exc:
                _raise_unless_not_found(exc)

    def _server_side_apply(self, obj: dict[str, Any]) -> None:
        writers: dict[str, Callable[..., Any]] = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "Service": self.core.patch_namespaced_service,
            "HTTPRoute": lambda name, ns, body, **kw: self.custom.patch_namespaced_custom_object(
                *GATEWAY, ns, "httproutes", name, body, **kw
            ),
        }
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
        meta = obj["metadata"]
        writers[obj["kind"]](meta["name"], meta["namespace"], obj, **options)

    def write_status(self, md: api.ModelDeployment, new: api.ModelDeploymentStatus) -> dict[str, Any] | None:
        """Patches status when it differs from what `md` holds; returns the object as the apiserver
        stored it (the next pass starts from it), or None when there was nothing to write."""
        old = md.status.wire()
        wire = new.wire()
        if old == wire:
            return None
        # A merge patch leaves keys it does not mention; fields that vanished must be sent as null.
        patch: dict[str, Any] = {"status": {**{k: None for k in old if k not in wire}, **wire}}
        if md.metadata.resource_version:
            # Decided from this version: if the object changed since (a write of ours that timed
            # out but landed, another writer), the apiserver answers 409 instead of letting a
            # decision from an older state overwrite a newer one.
            patch["metadata"] = {"resourceVersion": md.metadata.resource_version}
        stored = self.custom.patch_namespaced_custom_object_status(
            api.GROUP, api.VERSION, md.metadata.namespace, api.PLURAL, md.metadata.name, patch
        )
        return cast(dict[str, Any], stored)

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        """The ModelDeployment as stored now: the one GET, for when the watch's copy cannot be trusted."""
        body = self.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, name)
        return cast(dict[str, Any], body)

    def post_events(self, md: api.ModelDeployment, events: list[Event], now: datetime) -> None:
        for event in events:
            stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            # core/v1 Events: the python client mangles events.k8s.io's MicroTime eventTime.
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{md.metadata.name}.{uuid.uuid4().hex[:16]}"},
                "involvedObject": {
                    "apiVersion": api.API_VERSION,
                    "kind": api.KIND,
                    "name": md.metadata.name,
                    "namespace": md.metadata.namespace,
                    "uid": md.metadata.uid,
                },
                "reason": event.reason,
                "message": event.message[:1024],
                "type": event.type,
                "source": {"component": "modelship-operator"},
                "reportingComponent": "modelship.dev/operator",
                "reportingInstance": "modelship-operator",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
            try:
                self.core.create_namespaced_event(md.metadata.namespace, cast(Any, body))
            except ApiException as exc:  # an event is a courtesy; it must never fail a reconcile
                log.warning("could not post event %s: %s", event.reason, exc.reason)


def _raise_unless_not_found(exc: ApiException) -> None:
    """Deleting or scaling what is already gone is success: the goal state holds."""
    if exc.status != 404:
        raise exc
