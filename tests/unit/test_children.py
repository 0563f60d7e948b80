"""The objects a ModelDeployment owns, built without a cluster."""

from __future__ import annotations

from typing import Any, cast

from modelship import api, children

from .builders import md


def model(uri: str = "https://m.example/iris/1.skops", **kw: object) -> api.Model:
    return api.Model.model_validate({"version": "1", "uri": uri, **kw})


def container(dep: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], dep["spec"]["template"]["spec"]["containers"][0])


def test_serving_pods_meet_the_restricted_pod_security_standard() -> None:
    dep = children.build_serving_deployment(md(), model(), 2)
    pod = dep["spec"]["template"]["spec"]
    ctx = container(dep)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["readOnlyRootFilesystem"] is True


def test_the_model_reaches_the_server_through_its_environment() -> None:
    digest = "a" * 64
    dep = children.build_serving_deployment(md(), model(format="onnx", sha256=digest), 1)
    env = {e["name"]: e["value"] for e in container(dep)["env"]}
    assert env["MODELSHIP_MODEL_URI"] == "https://m.example/iris/1.skops"
    assert env["MODELSHIP_MODEL_FORMAT"] == "onnx"
    assert env["MODELSHIP_MODEL_SHA256"] == digest
    assert env["MODELSHIP_MODEL_VERSION"] == "1"
    assert env["MODELSHIP_MODEL_NAME"] == "iris"


def test_probes_use_the_servers_health_endpoints() -> None:
    c = container(children.build_serving_deployment(md(), model(), 1))
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_a_pvc_model_is_mounted_read_only_and_seen_as_a_file() -> None:
    dep = children.build_serving_deployment(md(), model(uri="pvc://models/iris/1/model.skops"), 1)
    pod = dep["spec"]["template"]["spec"]
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod[
        "volumes"
    ]
    env = {e["name"]: e["value"] for e in container(dep)["env"]}
    assert env["MODELSHIP_MODEL_URI"] == "file:///mnt/models/models/iris/1/model.skops"


def test_pod_labels_and_annotations_from_the_spec_reach_the_pods() -> None:
    current = md(serving={"podLabels": {"team": "ml"}, "podAnnotations": {"prometheus.io/scrape": "true"}})
    template = children.build_serving_deployment(current, current.spec.model, 1)["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["metadata"]["labels"][children.LABEL_VERSION] == "1"
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}


def test_children_are_owned_by_the_model_deployment() -> None:
    dep = children.build_serving_deployment(md(), model(), 1)
    (ref,) = dep["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "ModelDeployment",
        "iris",
        "uid-1",
        True,
    )


def test_scaling_does_not_change_the_content_hash() -> None:
    a = children.build_serving_deployment(md(), model(), 1)
    b = children.build_serving_deployment(md(), model(), 5)
    key = children.ANNOTATION_SPEC_HASH
    assert a["metadata"]["annotations"][key] == b["metadata"]["annotations"][key]


def test_changing_what_runs_changes_the_content_hash() -> None:
    a = children.build_serving_deployment(md(), model(), 1)
    b = children.build_serving_deployment(md(serving={"image": "example/other:1"}), model(), 1)
    key = children.ANNOTATION_SPEC_HASH
    assert a["metadata"]["annotations"][key] != b["metadata"]["annotations"][key]


def test_an_s3_model_gets_its_settings_and_the_named_secret_as_env_references() -> None:
    s3 = {
        "endpoint": "http://s3.storage:7070",
        "region": "eu-west-1",
        "forcePathStyle": True,
        "credentialsSecret": {"name": "model-store"},
    }
    dep = children.build_serving_deployment(md(), model(uri="s3://models/iris/1.skops", s3=s3), 1)
    env = {e["name"]: e for e in container(dep)["env"]}
    assert env["MODELSHIP_MODEL_URI"]["value"] == "s3://models/iris/1.skops"
    assert env["MODELSHIP_S3_ENDPOINT"]["value"] == "http://s3.storage:7070"
    assert env["MODELSHIP_S3_REGION"]["value"] == "eu-west-1"
    assert env["MODELSHIP_S3_ADDRESSING_STYLE"]["value"] == "path"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": "model-store", "key": key}}}


def test_an_s3_secret_may_hold_a_session_token_for_temporary_credentials() -> None:
    s3 = {"credentialsSecret": {"name": "model-store"}}
    dep = children.build_serving_deployment(md(), model(uri="s3://models/iris/1.skops", s3=s3), 1)
    env = {e["name"]: e for e in container(dep)["env"]}
    # optional: a Secret of long-lived keys without the token still starts the pod
    assert env["AWS_SESSION_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "model-store", "key": "AWS_SESSION_TOKEN", "optional": True}
    }


def test_an_s3_model_without_a_secret_leaves_credentials_to_the_pods_identity() -> None:
    dep = children.build_serving_deployment(
        md(), model(uri="s3://models/iris/1.skops", s3={"region": "us-east-1"}), 1
    )
    names = {e["name"] for e in container(dep)["env"]}
    assert "MODELSHIP_S3_REGION" in names
    assert not {n for n in names if n.startswith("AWS_")}
