"""The install guide keeps up with the chart: every value is in its table, every resource the RBAC
grants is in its list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.chart.helm import CHART, find, render
from tests.support.k8s import REPO

GUIDE = REPO / "docs/install.md"
# Values documented as a group in the table rather than key by key.
GROUPED = (
    "livenessProbe.",
    "readinessProbe.",
    "resources.",
    "podSecurityContext.",
    "containerSecurityContext.",
)


def leaf_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths += leaf_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_chart_value_is_in_the_install_guide() -> None:
    # Given every value the chart offers
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    guide = GUIDE.read_text()
    # Then the guide's values table names each (grouped ones by their parent)
    missing = [
        path for path in leaf_paths(values) if f"`{path}`" not in guide and not path.startswith(GROUPED)
    ]
    assert missing == []


def test_every_rbac_rule_is_in_the_install_guide(tmp_path: Path) -> None:
    # Given the rules the chart grants
    (role,) = find(render("docs", "default", {}, tmp_path), "ClusterRole")
    guide = GUIDE.read_text()
    # Then the guide's table lists each resource the operator may touch
    missing = [
        resource
        for rule in role["rules"]
        for resource in rule["resources"]
        if f"| `{resource}` |" not in guide
    ]
    assert missing == []
