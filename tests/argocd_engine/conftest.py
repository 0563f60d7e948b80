from __future__ import annotations

import pytest

# The ModelDeployments captured live in each state, the same objects tests/argocd runs in lupa.
from tests.argocd.conftest import captured  # noqa: F401
from tests.argocd_engine.argocd import ensure_argocd


@pytest.fixture(scope="session")
def argocd(cluster: None) -> None:
    ensure_argocd()
