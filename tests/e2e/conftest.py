from __future__ import annotations

import pytest

from tests.e2e.support import REAL_NODE, iris_model_bytes
from tests.support.k8s import get_json


@pytest.fixture(scope="session")
def real_node(cluster: None) -> str:
    """The local cluster's real node, Ready. `cluster` started it (hack/node.sh); a node that is
    missing or not Ready fails the test: nothing here is skipped."""
    node = get_json("node", REAL_NODE)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", f"{REAL_NODE} is not Ready: {ready}"
    return REAL_NODE


@pytest.fixture(scope="session")
def iris_model() -> bytes:
    return iris_model_bytes()
