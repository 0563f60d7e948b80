from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

# Cluster fixtures for every suite that needs the local control plane (unused ones cost nothing).
from tests.support.k8s import cluster, namespace, operator  # noqa: F401


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    # Lets the operator fixture print the operator's log when the test body failed.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
