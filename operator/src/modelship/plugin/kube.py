"""The plugin's only API I/O: read a ModelDeployment and its Deployments, merge-patch annotations.

Connection settings follow kubectl: `--kubeconfig`, else KUBECONFIG (a list of files, merged),
else ~/.kube/config, else the pod's service account; `--context` picks a context; the namespace
is `-n`, else the context's namespace, else "default". Every API failure becomes a PluginError
with a sentence for the user, never a traceback.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelship import api
from modelship.children import LABEL_MODEL_DEPLOYMENT

REQUEST_TIMEOUT = 30.0
MERGE_PATCH = "application/merge-patch+json"
KIND_REF = f"{api.PLURAL}.{api.GROUP}"


class PluginError(Exception):
    """A failure to explain to the user in one sentence; the plugin exits non-zero."""


class Conflict(PluginError):
    """The object changed between our read and our write (HTTP 409)."""


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


class Kube:
    def __init__(self, api_client: client.ApiClient, default_namespace: str) -> None:
        self.api_client = api_client
        self.default_namespace = default_namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        try:
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, persist_config=False
            )
            namespace = _context_namespace(kubeconfig, context)
        except config.ConfigException as exc:
            if kubeconfig is None and context is None and _in_cluster():
                return cls._in_cluster_client()
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            if context and f"name {context} in" in str(exc):
                raise PluginError(f'context "{context}" not found in the kubeconfig ({where})') from None
            raise PluginError(f"cannot use the kubeconfig ({where}): {exc}") from None
        except OSError as exc:
            raise PluginError(f"cannot read the kubeconfig: {exc}") from None
        return cls(api_client, namespace)

    @classmethod
    def _in_cluster_client(cls) -> Kube:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                namespace = f.read().strip() or "default"
        except OSError:
            namespace = "default"
        return cls(client.ApiClient(configuration), namespace)

    # -- calls ---------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The ModelDeployment as stored now; PluginError naming what is missing on 404."""
        try:
            obj = self.custom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            raise self._explain(exc, namespace, name) from None
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None
        return cast(dict[str, Any], obj)

    def deployments(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The Deployments that serve `name`'s versions, as plain dicts (empty if forbidden: the
        status view is still useful without them)."""
        try:
            listed = self.apps.list_namespaced_deployment(
                namespace,
                label_selector=f"{LABEL_MODEL_DEPLOYMENT}={name}",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 403:
                return []
            raise self._explain(exc, namespace, name) from None
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None
        plain: dict[str, Any] = self.api_client.sanitize_for_serialization(listed)  # type: ignore[no-untyped-call]
        items: list[dict[str, Any]] = plain.get("items") or []
        return items

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch; Conflict when the resourceVersion in `patch` is no longer current."""
        try:
            obj = self.custom.patch_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
                patch,
                field_manager="kubectl-modelship",
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{KIND_REF}/{name} changed while we were deciding") from None
            raise self._explain(exc, namespace, name) from None
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None
        return cast(dict[str, Any], obj)

    # -- errors --------------------------------------------------------------------------------
    def _explain(self, exc: ApiException, namespace: str, name: str) -> PluginError:
        body = _status_body(exc)
        message = body.get("message") or exc.reason or "no message"
        if exc.status == 404:
            if not (body.get("details") or {}).get("name"):
                # The resource type itself is unknown: the CRD is not installed.
                return PluginError(
                    f"the server does not know {KIND_REF}: is the Modelship CRD installed? ({message})"
                )
            if not self._namespace_exists(namespace):
                return PluginError(f'namespace "{namespace}" not found')
            return PluginError(f'{KIND_REF} "{name}" not found in namespace "{namespace}"')
        if exc.status in (401, 403):
            return PluginError(f"not allowed: {message}")
        return PluginError(f"the API server answered {exc.status} {exc.reason}: {message}")

    def _namespace_exists(self, namespace: str) -> bool:
        try:
            self.core.read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            return bool(exc.status != 404)  # forbidden to look: assume it exists
        return True

    def _unreachable(self, exc: Exception) -> PluginError:
        host = self.api_client.configuration.host
        reason = getattr(exc, "reason", None) or exc
        return PluginError(f"cannot reach the Kubernetes API at {host}: {reason}")


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
