"""Pure builders for the objects a ModelDeployment owns: one Deployment per model version, Services.

Every builder returns a plain dict ready for server-side apply, stamped with a hash of its content
in the `modelship.dev/spec-hash` annotation. The reconciler compares that hash with what it
observes and writes only when they differ, so an operator at rest sends no writes to the API.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelship import api

PREFIX = "modelship.dev"
LABEL_MODEL_DEPLOYMENT = f"{PREFIX}/model-deployment"
LABEL_VERSION = f"{PREFIX}/version"
LABEL_ROLE = f"{PREFIX}/role"
ANNOTATION_SPEC_HASH = f"{PREFIX}/spec-hash"
MANAGED_BY = "modelship"

CONTAINER_NAME = "server"
SERVICE_PORT = 80
MODEL_MOUNT_ROOT = "/mnt/models"
DEFAULT_SERVING_IMAGE = "ghcr.io/modelship/modelship-server:0.1.0"
# The image's non-root user (serving_image/Dockerfile); stated here too so that the restricted Pod
# Security Standard admits the pod even if a custom image has no numeric USER.
SERVER_UID = 10001


def deployment_name(md_name: str, version: str) -> str:
    return f"{md_name}-{version}"


def content_hash(obj: Any) -> str:
    """A short, stable digest of any JSON-able value (key order does not matter)."""
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def owner_reference(md: api.ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "name": md.metadata.name,
        "uid": md.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def common_labels(md_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": md_name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "modelship",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_MODEL_DEPLOYMENT: md_name,
    }


def version_labels(md_name: str, version: str) -> dict[str, str]:
    return {
        **common_labels(md_name),
        "app.kubernetes.io/instance": deployment_name(md_name, version),
        "app.kubernetes.io/version": version,
        LABEL_VERSION: version,
    }


def selector_for(md_name: str, version: str | None = None) -> dict[str, str]:
    selector = {LABEL_MODEL_DEPLOYMENT: md_name}
    if version is not None:
        selector[LABEL_VERSION] = version
    return selector


def _stamp(obj: dict[str, Any], hashed: Any) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = content_hash(hashed)
    return obj


def _model_location(model: api.Model) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """The URI the server sees, plus the volumes and mounts a pvc:// model needs."""
    if not model.uri.startswith("pvc://"):
        return model.uri, [], []
    claim, _, path = model.uri.removeprefix("pvc://").partition("/")
    mount = f"{MODEL_MOUNT_ROOT}/{claim}"
    volumes = [{"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}]
    mounts = [{"name": "model", "mountPath": mount, "readOnly": True}]
    return f"file://{mount}/{path}", volumes, mounts


def _server_env(md_name: str, model: api.Model, serving: api.Serving) -> list[dict[str, Any]]:
    uri, _, _ = _model_location(model)
    env: list[dict[str, Any]] = [
        {"name": "MODELSHIP_MODEL_URI", "value": uri},
        {"name": "MODELSHIP_MODEL_NAME", "value": md_name},
        {"name": "MODELSHIP_MODEL_VERSION", "value": model.version},
        {"name": "MODELSHIP_MODEL_FORMAT", "value": str(model.format)},
        {"name": "MODELSHIP_PORT", "value": str(serving.port)},
    ]
    if model.sha256:
        env.append({"name": "MODELSHIP_MODEL_SHA256", "value": model.sha256})
    return env + _s3_env(model.s3) + [e.wire() for e in serving.env or []]


def _s3_env(s3: api.S3Source | None) -> list[dict[str, Any]]:
    """The S3 settings as the server's variables; credentials (and the session token of temporary ones,
    when the Secret has one) by reference to the user's Secret, which the operator never reads. Without a
    Secret nothing is set, so the pod's own identity (IRSA) applies."""
    if s3 is None:
        return []
    env: list[dict[str, Any]] = []
    if s3.endpoint is not None:
        env.append({"name": "MODELSHIP_S3_ENDPOINT", "value": s3.endpoint})
    if s3.region is not None:
        env.append({"name": "MODELSHIP_S3_REGION", "value": s3.region})
    if s3.force_path_style is not None:
        style = "path" if s3.force_path_style else "virtual"
        env.append({"name": "MODELSHIP_S3_ADDRESSING_STYLE", "value": style})
    if s3.credentials_secret is not None:
        secret = s3.credentials_secret.name
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
        # Temporary credentials (STS) come with a token; a Secret of long-lived keys has none, so the
        # reference is optional and the pod starts either way.
        env.append(
            {
                "name": "AWS_SESSION_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "AWS_SESSION_TOKEN", "optional": True}},
            }
        )
    return env


def build_pod_template(
    md: api.ModelDeployment, model: api.Model, default_image: str = DEFAULT_SERVING_IMAGE
) -> dict[str, Any]:
    serving = md.spec.serving
    name = md.metadata.name
    _, model_volumes, model_mounts = _model_location(model)
    probe = {"port": "http", "scheme": "HTTP"}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": serving.image or default_image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": serving.port, "protocol": "TCP"}],
        "env": _server_env(name, model, serving),
        # The server's last log line (its one-line reason for exiting) becomes the container's
        # termination message, which the operator reads from the pod and puts in status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", **probe},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", **probe},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {
            # Loading a large model can take minutes; liveness must not kill the pod meanwhile.
            "httpGet": {"path": "/v2/health/live", **probe},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        # Endpoints take a moment to drop a terminating pod; keep serving meanwhile, then the
        # server drains in-flight requests on SIGTERM.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The server writes only under /tmp (prometheus multiprocess files, downloads).
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *model_mounts],
    }
    if serving.resources:
        container["resources"] = serving.resources.wire()
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVER_UID,
            "runAsGroup": SERVER_UID,
            "fsGroup": SERVER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 40,  # preStop 5s + the server's 25s drain, with margin
        "volumes": [{"name": "tmp", "emptyDir": {}}, *model_volumes],
    }
    optional = {
        "nodeSelector": serving.node_selector,
        "tolerations": serving.tolerations,
        "affinity": serving.affinity,
        "serviceAccountName": serving.service_account_name,
        "imagePullSecrets": [s.wire() for s in serving.image_pull_secrets or []] or None,
    }
    pod_spec.update({k: v for k, v in optional.items() if v})
    labels = {**(serving.pod_labels or {}), **version_labels(name, model.version)}
    metadata: dict[str, Any] = {"labels": labels}
    if serving.pod_annotations:
        metadata["annotations"] = dict(serving.pod_annotations)
    return {"metadata": metadata, "spec": pod_spec}


def build_serving_deployment(
    md: api.ModelDeployment,
    model: api.Model,
    replicas: int,
    default_image: str = DEFAULT_SERVING_IMAGE,
) -> dict[str, Any]:
    """The Deployment that serves one model version. Replicas are not part of the hash: scaling
    a version is a separate, cheaper write than changing what it runs."""
    name = md.metadata.name
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_for(name, model.version)},
        "template": build_pod_template(md, model, default_image),
        "revisionHistoryLimit": 2,
        "progressDeadlineSeconds": md.spec.rollout.progress_deadline_seconds,
        # A version keeps its capacity while its own template changes (image, resources).
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
    }
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name, model.version),
            "namespace": md.metadata.namespace,
            "labels": version_labels(name, model.version),
            "ownerReferences": [owner_reference(md)],
        },
        "spec": spec,
    }
    _stamp(obj, {"metadata": obj["metadata"], "spec": spec})
    obj["spec"] = {**spec, "replicas": replicas}
    return obj


def build_service(
    md: api.ModelDeployment, name: str, version: str | None, role: str = "serving"
) -> dict[str, Any]:
    """A Service in front of the serving pods; `version=None` selects every version's pods, so
    traffic splits by Ready pod counts."""
    labels = {**common_labels(md.metadata.name), LABEL_ROLE: role}
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": md.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_for(md.metadata.name, version),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return _stamp(obj, {"metadata": obj["metadata"], "spec": obj["spec"]})


def stable_service_name(md_name: str) -> str:
    return f"{md_name}-stable"


def canary_service_name(md_name: str) -> str:
    return f"{md_name}-canary"


def build_http_route(
    md: api.ModelDeployment, routing: api.GatewayAPIRouting, canary_weight: int
) -> dict[str, Any]:
    """The Gateway API route that splits traffic exactly: `100 - w` to `<name>-stable`, `w` to
    `<name>-canary`."""
    name = md.metadata.name
    backends = [
        {"name": stable_service_name(name), "port": SERVICE_PORT, "weight": 100 - canary_weight},
        {"name": canary_service_name(name), "port": SERVICE_PORT, "weight": canary_weight},
    ]
    obj: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": md.metadata.namespace,
            "labels": {**common_labels(name), LABEL_ROLE: "traffic-split"},
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {
            "parentRefs": [ref.wire() for ref in routing.parent_refs],
            "rules": [{"backendRefs": backends}],
        },
    }
    return _stamp(obj, {"metadata": obj["metadata"], "spec": obj["spec"]})
