"""The soak's own API client: direct to the apiserver (never through the operator's fault proxy),
each call bounded, so that a user's edit during a restart fails like a user's would."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config

GROUP, VERSION, PLURAL = "modelship.dev", "v1alpha1", "modeldeployments"
LABEL_OBJECT = "modelship.dev/model-deployment"
LABEL_VERSION = "modelship.dev/version"
TIMEOUT = 5


@dataclass
class Kube:
    namespace: str
    core: client.CoreV1Api
    custom: client.CustomObjectsApi

    @classmethod
    def connect(cls, kubeconfig: Path, namespace: str) -> Kube:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        return cls(namespace, client.CoreV1Api(api), client.CustomObjectsApi(api))

    # -- ModelDeployments -------------------------------------------------------------------------
    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest, _request_timeout=TIMEOUT
        )

    def objects(self) -> dict[str, dict[str, Any]]:
        found = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, _request_timeout=TIMEOUT
        )
        return {o["metadata"]["name"]: o for o in cast(dict[str, Any], found)["items"]}

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch, _request_timeout=TIMEOUT
        )

    def annotate(self, name: str, key: str, value: str) -> None:
        self.patch(name, {"metadata": {"annotations": {key: value}}})

    # -- pods -------------------------------------------------------------------------------------
    def pods(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.namespace, _request_timeout=TIMEOUT).items)

    def ready_pods(self) -> dict[str, int]:
        """Ready pods per ModelDeployment, all versions together, leaving out pods being deleted.
        Read as plain JSON: the client's models cost a core's second for a few hundred pods."""
        resp: Any = self.core.list_namespaced_pod(
            self.namespace, _preload_content=False, _request_timeout=TIMEOUT
        )
        counts: dict[str, int] = collections.Counter()
        for pod in json.loads(resp.data)["items"]:
            conditions = pod.get("status", {}).get("conditions") or []
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            if ready and not pod["metadata"].get("deletionTimestamp"):
                counts[pod["metadata"].get("labels", {}).get(LABEL_OBJECT, "")] += 1
        return dict(counts)

    def label_pod(self, pod: str, labels: dict[str, str]) -> None:
        self.core.patch_namespaced_pod(
            pod, self.namespace, {"metadata": {"labels": labels}}, _request_timeout=TIMEOUT
        )

    def delete_pod(self, pod: str) -> None:
        self.core.delete_namespaced_pod(pod, self.namespace, grace_period_seconds=0, _request_timeout=TIMEOUT)

    # -- events -----------------------------------------------------------------------------------
    def events(self) -> list[Any]:
        """The operator's Events, in the order they were stored (resourceVersion within a namespace)."""
        items = self.core.list_namespaced_event(self.namespace, _request_timeout=30).items
        ours = [e for e in items if e.source and e.source.component == "modelship-operator"]
        return sorted(ours, key=lambda e: int(e.metadata.resource_version))


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
