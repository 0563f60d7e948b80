"""The argocd-cm snippet users install (argocd/argocd-cm.yaml and the one in argocd/README.md)
carries exactly the Lua files that the other tests in this directory run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd import argocd_lua

ARGOCD = Path(__file__).resolve().parents[2] / "argocd"
KEY = "modelship.dev_ModelDeployment"
ACTIONS = ["promote", "promote-full", "abort", "retry", "pause", "resume"]


def entries(configmap: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    data = configmap["data"]
    health = data[f"resource.customizations.health.{KEY}"]
    actions = yaml.safe_load(data[f"resource.customizations.actions.{KEY}"])
    return health, actions


def check(configmap: dict[str, Any]) -> None:
    health, actions = entries(configmap)
    assert health == (ARGOCD / "health.lua").read_text()
    assert actions["discovery.lua"] == (ARGOCD / "actions/discovery.lua").read_text()
    assert [d["name"] for d in actions["definitions"]] == ACTIONS
    for definition in actions["definitions"]:
        assert definition["action.lua"] == argocd_lua.render.action_script(definition["name"])


def test_the_configmap_file_carries_the_current_scripts() -> None:
    configmap = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert configmap["metadata"]["name"] == "argocd-cm"
    check(configmap)


def test_the_readme_snippet_carries_the_current_scripts() -> None:
    readme = (ARGOCD / "README.md").read_text()
    block = re.search(r"<!-- argocd-cm:begin -->\n```yaml\n(.*?)```\n<!-- argocd-cm:end -->", readme, re.S)
    assert block, "the argocd-cm snippet is missing from argocd/README.md; run python argocd/render.py"
    check(yaml.safe_load(block.group(1)))


def test_the_renderer_reproduces_both_exactly() -> None:
    render = argocd_lua.render
    assert render.configmap() == (ARGOCD / "argocd-cm.yaml").read_text(), "run python argocd/render.py"
    readme = (ARGOCD / "README.md").read_text()
    assert render.readme_with_snippet(readme) == readme, "run python argocd/render.py"


@pytest.mark.parametrize(
    "source",
    [
        'return ("x"):upper()',
        "return string.format('%d', 1)",
        "return math.floor(1.5)",
        "return io.open('/')",
    ],
)
def test_the_test_sandbox_lacks_what_argo_cds_lacks(source: str) -> None:
    # The scripts are only as portable as this sandbox is strict: string, math and io are absent.
    with pytest.raises(argocd_lua.LuaError):
        argocd_lua.execute(source, {})


def test_the_test_sandbox_has_the_safe_os_only_through_require_and_lua_51() -> None:
    # As in Argo CD (util/lua/oslib_safe.go): the module is there, the global is not.
    assert argocd_lua.execute("return require('os').date('!%Y') .. '/' .. _VERSION", {}).endswith("/Lua 5.1")
    with pytest.raises(argocd_lua.LuaError):
        argocd_lua.execute("return os.date('!%Y')", {})
