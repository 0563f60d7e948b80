"""The CRD is rendered from the pydantic models; the committed copies must not drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import yaml

from modelship import crd

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = "modeldeployments.modelship.dev.yaml"


def test_the_committed_crd_is_what_the_models_render() -> None:
    assert (REPO / "crds" / CRD_FILE).read_text() == crd.render(), "run `make crd`"


def test_the_charts_crd_is_identical_to_crds() -> None:
    assert (REPO / "charts/modelship/crds" / CRD_FILE).read_text() == (REPO / "crds" / CRD_FILE).read_text()


def test_the_schema_is_structural() -> None:
    text = json.dumps(crd.openapi_schema())
    for word in ("$ref", "allOf", '"title"', "null"):
        assert word not in text

    def unions(node: object) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            found = [node] if "anyOf" in node else []
            return found + [u for v in node.values() for u in unions(v)]
        if isinstance(node, list):
            return [u for v in node for u in unions(v)]
        return []

    # The only union a structural schema allows is int-or-string (resource quantities).
    assert all(u.get("x-kubernetes-int-or-string") for u in unions(crd.openapi_schema()))


def test_exclusive_bounds_are_openapi_v3_flags_beside_the_bound() -> None:
    # Given a pydantic bound gt=0 (JSON Schema 2020: "exclusiveMinimum": 0)
    node = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}

    # When it becomes a structural schema node
    out = crd.structural(node, {})

    # Then it reads as the apiserver's OpenAPI v3 does, or the CRD would be refused at apply
    assert out == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
    }


def test_every_cel_rule_has_a_message_naming_a_field() -> None:
    schema = crd.openapi_schema()
    rules = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            rules.extend(node.get("x-kubernetes-validations", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert len(rules) >= 4
    assert all("spec." in r["message"] for r in rules)


def test_the_crd_has_the_short_name_status_subresource_and_printer_columns() -> None:
    doc = yaml.safe_load(crd.render())
    version = doc["spec"]["versions"][0]
    assert doc["spec"]["names"]["shortNames"] == ["mdep"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Model", "Stable", "Canary", "Weight", "Phase", "Age"} <= set(columns)


def _model_schema() -> dict[str, Any]:
    return cast(dict[str, Any], crd.openapi_schema()["properties"]["spec"]["properties"]["model"])


def test_the_uri_rule_accepts_s3_bucket_and_key_and_names_the_field() -> None:
    # CEL's matches() is RE2; this pattern means the same in Python's re.
    import re

    from modelship import api

    (uri_rule,) = _model_schema()["properties"]["uri"]["x-kubernetes-validations"]
    assert api.S3_URI_PATTERN in uri_rule["rule"]
    assert "spec.model.uri" in uri_rule["message"] and "s3://<bucket>/<key>" in uri_rule["message"]
    assert re.match(api.S3_URI_PATTERN, "s3://models/iris/1/model.skops")
    for bad in ("s3://models", "s3://models/", "s3:///key", "s3://UPPER/key", "s3://a/key"):
        assert not re.match(api.S3_URI_PATTERN, bad), bad


def test_s3_settings_are_refused_for_a_uri_that_is_not_s3_with_a_message_naming_the_field() -> None:
    rules = _model_schema()["x-kubernetes-validations"]
    assert {
        "rule": "!has(self.s3) || self.uri.startsWith('s3://')",
        "message": "spec.model.s3 applies only to an s3:// spec.model.uri",
        "fieldPath": ".s3",
    } in rules


def test_the_credentials_secret_is_a_name_reference_only() -> None:
    s3 = _model_schema()["properties"]["s3"]["properties"]
    secret = s3["credentialsSecret"]
    assert set(secret["properties"]) == {"name"}
    assert secret["properties"]["name"]["pattern"] == r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    assert "spec.model.s3.endpoint" in s3["endpoint"]["x-kubernetes-validations"][0]["message"]
