"""All I/O against the Kubernetes API: reading a ModelDeployment's children, writing the plan.

Writes are idempotent: server-side apply for whole objects, merge patches for replica counts,
"not found" on delete counts as done. The status writer sends a patch only when the status
really changed, so a ModelDeployment at rest costs no writes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelship import api, children
from modelship.engine import Event, Plan
from modelship.observation import Observed, observe_children

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


class Cluster:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self._has_gateway_api: bool | None = None

    def _plain(self, obj: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.api_client.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return result

    # -- reading -------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ModelDeployment as stored now, or None once it is gone."""
        try:
            obj = self.custom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, name
            )
            return cast(dict[str, Any], obj)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def observe(self, md: api.ModelDeployment) -> Observed:
        ns, name = md.metadata.namespace, md.metadata.name
        selector = f"{children.LABEL_MODEL_DEPLOYMENT}={name}"
        owned = _owned_by(md.metadata.uid)
        deployments = [
            d
            for d in self._plain(self.apps.list_namespaced_deployment(ns, label_selector=selector))["items"]
            if owned(d)
        ]
        pods = self._plain(self.core.list_namespaced_pod(ns, label_selector=selector))["items"]
        services = self._plain(self.core.list_namespaced_service(ns, label_selector=selector))["items"]
        for svc in services:
            svc["kind"] = "Service"
        others = [s for s in services if owned(s)] + [r for r in self._routes(ns, selector) if owned(r)]
        return observe_children(deployments, pods, others)

    def _routes(self, ns: str, selector: str) -> list[dict[str, Any]]:
        """HTTPRoutes with our labels. A cluster without the Gateway API answers 404 once; after
        that the operator stops asking (until it restarts)."""
        if self._has_gateway_api is False:
            return []
        try:
            listed = self.custom.list_namespaced_custom_object(
                *GATEWAY, ns, "httproutes", label_selector=selector
            )
        except ApiException as exc:
            if exc.status == 404:
                self._has_gateway_api = False
                return []
            raise
        routes = cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])
        for route in routes:
            route["kind"] = "HTTPRoute"
        return routes

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

    def write_status(self, md: api.ModelDeployment, new: api.ModelDeploymentStatus) -> bool:
        """Patches status when it differs from what `md` holds; returns whether it wrote."""
        old = md.status.wire()
        wire = new.wire()
        if old == wire:
            return False
        # A merge patch leaves keys it does not mention; fields that vanished must be sent as null.
        patch = {"status": {**{k: None for k in old if k not in wire}, **wire}}
        self.custom.patch_namespaced_custom_object_status(
            api.GROUP, api.VERSION, md.metadata.namespace, api.PLURAL, md.metadata.name, patch
        )
        return True

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


def _owned_by(uid: str) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        refs = obj.get("metadata", {}).get("ownerReferences") or []
        return any(ref.get("uid") == uid for ref in refs)

    return check


def _raise_unless_not_found(exc: ApiException) -> None:
    """Deleting or scaling what is already gone is success: the goal state holds."""
    if exc.status != 404:
        raise exc
