"""The operator's status writer against the real apiserver: a status decided from one version of a
ModelDeployment is stored only if the object is still that version (no operator runs here; the test
writes as the operator does)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from modelship import api
from modelship.cluster import Cluster
from tests.support.k8s import ENV, apply, get_json, kubectl, model_deployment


def read(namespace: str) -> api.ModelDeployment:
    return api.ModelDeployment.model_validate(get_json("-n", namespace, "mdep", "iris"))


def status(message: str) -> api.ModelDeploymentStatus:
    return api.ModelDeploymentStatus(phase=api.Phase.PROGRESSING, message=message)


@pytest.fixture
def cluster_writer() -> Cluster:
    # the kubernetes client has no type hints
    client: Any = config.new_client_from_config(config_file=ENV["KUBECONFIG"])  # type: ignore[no-untyped-call]
    return Cluster(client)


def test_a_status_decided_from_an_older_version_is_refused_and_stores_nothing(
    namespace: str, cluster_writer: Cluster
) -> None:
    # Given a ModelDeployment read at one version, then changed by another writer (an annotation)
    apply(namespace, model_deployment("iris", "1"))
    before = read(namespace)
    kubectl("-n", namespace, "annotate", "mdep", "iris", "example.com/by=someone-else")
    # When a status decided from the older read is written
    with pytest.raises(ApiException) as refused:
        cluster_writer.write_status(before, status("decided from the older version"))
    # Then the apiserver refuses it as a conflict, and the stored status is not it
    assert refused.value.status == 409
    assert read(namespace).status.message != "decided from the older version"


def test_a_status_decided_from_the_current_version_is_stored(namespace: str, cluster_writer: Cluster) -> None:
    # Given a ModelDeployment read as it is stored now
    apply(namespace, model_deployment("iris", "1"))
    current = read(namespace)
    # When a status decided from it is written
    stored = cluster_writer.write_status(current, status("decided from the current version"))
    # Then it is stored, and the answer is the new version the next pass starts from
    assert stored is not None
    assert read(namespace).status.message == "decided from the current version"
    assert (
        stored["metadata"]["resourceVersion"]
        == get_json("-n", namespace, "mdep", "iris")["metadata"]["resourceVersion"]
    )
