"""Renders the ModelDeployment CRD from the pydantic models in `modelship.api`.

`python -m modelship.crd` prints the manifest that `make crd` writes to `crds/`. The apiserver
needs a *structural* schema: every node typed, no `$ref`, no `anyOf` for optionals, free-form
objects marked `x-kubernetes-preserve-unknown-fields`. Pydantic's JSON schema is close to that;
`structural()` closes the gap.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from modelship import api

ROOT_RULES = [
    api.rule(
        f"size(self.metadata.name) + size(self.spec.model.version) <= {api.MAX_NAME_PLUS_VERSION}",
        f"spec.model.version is too long for this name: metadata.name and spec.model.version together "
        f"must be at most {api.MAX_NAME_PLUS_VERSION} characters, so that `<name>-<version>` stays "
        "a valid Deployment name",
        ".spec.model.version",
    )
]

PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.version"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryVersion"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]

_DROPPED_KEYS = {"title", "$defs"}


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrites one pydantic JSON-schema node into a Kubernetes structural schema node."""
    if isinstance(node, list):
        return [structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        # Optional[X] renders as anyOf [X, null]; an optional field is simply "not required" here.
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"unions other than Optional[X] have no structural form: {variants}")
        node = {**variants[0], **node}
        if node.get("default", 0) is None:
            del node["default"]
        return structural(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: structural(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = structural(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 gives the bound as the value; OpenAPI v3 (the apiserver's) as a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if out.get("type") == "object" and out.get("additionalProperties") in ({}, True):
        # dict[str, Any]: a free-form object (resources, affinity, ...) the apiserver must keep.
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    return out


def _schema_of(model: type[api.ApiModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    result: dict[str, Any] = structural(raw, raw.get("$defs", {}))
    return result


def openapi_schema() -> dict[str, Any]:
    status = _schema_of(api.ModelDeploymentStatus)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _schema_of(api.ModelDeploymentSpec),
            "status": status,
        },
        "x-kubernetes-validations": ROOT_RULES,
    }


def custom_resource_definition() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "modelship"},
            # Deleting the CRD deletes every ModelDeployment: never let a GitOps sync do that.
            "annotations": {"argocd.argoproj.io/sync-options": "Delete=false,Prune=false"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.KIND.lower(),
                "shortNames": ["mdep"],
                "categories": ["modelship"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


HEADER = "# Generated by `make crd` from operator/src/modelship/api.py. Do not edit by hand.\n"


def render() -> str:
    return HEADER + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
