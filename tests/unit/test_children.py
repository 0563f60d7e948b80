"""The objects a ModelDeployment owns, built without a cluster."""

from __future__ import annotations

from modelship import api, children

from .builders import md


def model(uri: str = "https://m.example/iris/1.skops", **kw: object) -> api.Model:
    return api.Model.model_validate({"version": "1", "uri": uri, **kw})


def container(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]["containers"][0]


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
