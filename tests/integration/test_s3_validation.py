"""The real apiserver refuses a malformed s3:// model, naming the field: the URI's shape, the S3 settings
and the reference to the credentials Secret are checked by the CRD before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.k8s import get_json, kubectl_result

S3 = "s3://models/iris/1/model.skops"

INVALID = [
    ({"uri": "s3://models"}, "spec.model.uri"),
    ({"uri": "s3://Models/iris/model.skops"}, "spec.model.uri"),
    ({"uri": "https://m/x", "s3": {"region": "us-east-1"}}, "spec.model.s3 applies only to an s3://"),
    ({"uri": S3, "s3": {"endpoint": "s3.example.com:9000"}}, "spec.model.s3.endpoint"),
    ({"uri": S3, "s3": {"region": "US East"}}, "spec.model.s3.region"),
    ({"uri": S3, "s3": {"credentialsSecret": {}}}, "spec.model.s3.credentialsSecret.name"),
    (
        {"uri": S3, "s3": {"credentialsSecret": {"name": "Model_Store"}}},
        "spec.model.s3.credentialsSecret.name",
    ),
]


@pytest.mark.parametrize(("model", "named"), INVALID, ids=[f"{n}-{i}" for i, (_, n) in enumerate(INVALID)])
def test_a_malformed_s3_model_is_refused_with_a_message_naming_the_field(
    namespace: str, model: dict[str, Any], named: str
) -> None:
    # Given a ModelDeployment whose s3:// model is malformed
    manifest = {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {"model": {"version": "1", **model}},
    }
    # When it is applied
    result = kubectl_result("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))
    # Then the apiserver refuses it, naming the field, and stores nothing
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert not get_json("-n", namespace, "mdep")["items"]


def test_an_s3_key_prefix_with_a_secret_reference_is_accepted(namespace: str) -> None:
    # Given an s3:// key prefix (a model directory) and a Secret reference
    manifest = {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {
                "version": "1",
                "uri": "s3://models/iris/1/",
                "format": "onnx",
                "s3": {"credentialsSecret": {"name": "model-store"}},
            }
        },
    }
    # When it is applied (server-side dry run: validation only)
    result = kubectl_result(
        "-n", namespace, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(manifest)
    )
    # Then the apiserver accepts it
    assert result.returncode == 0, result.stderr
