"""Every manifest under examples/ that the README shows is accepted by the real apiserver."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.k8s import REPO, kubectl_result

EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_example_is_a_valid_model_deployment(namespace: str, path: Path) -> None:
    result = kubectl_result("-n", namespace, "apply", "--dry-run=server", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert "modeldeployment.modelship.dev" in result.stdout
