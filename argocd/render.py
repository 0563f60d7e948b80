"""Renders the argocd-cm entries from the Lua files: `python argocd/render.py` rewrites
argocd/argocd-cm.yaml and the snippet in argocd/README.md. tests/argocd checks both are current."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUP_KIND = "modelship.dev_ModelDeployment"
ACTIONS = ("promote", "promote-full", "abort", "retry", "pause", "resume")
BEGIN, END = "<!-- argocd-cm:begin -->", "<!-- argocd-cm:end -->"


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    return "".join(pad + line if line.strip() else "\n" for line in text.splitlines(keepends=True))


def actions_value() -> str:
    """The value of resource.customizations.actions.<group_kind>: itself a YAML document."""
    out = "discovery.lua: |\n" + _block((HERE / "actions/discovery.lua").read_text(), 2)
    out += "definitions:\n"
    for name in ACTIONS:
        out += f"- name: {name}\n  action.lua: |\n"
        out += _block((HERE / "actions" / name / "action.lua").read_text(), 4)
    return out


def configmap() -> str:
    health = (HERE / "health.lua").read_text()
    return (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: argocd-cm\n"
        "  namespace: argocd\n"
        "  labels:\n"
        "    app.kubernetes.io/name: argocd-cm\n"
        "    app.kubernetes.io/part-of: argocd\n"
        "data:\n"
        f"  resource.customizations.health.{GROUP_KIND}: |\n"
        + _block(health, 4)
        + f"  resource.customizations.actions.{GROUP_KIND}: |\n"
        + _block(actions_value(), 4)
    )


def readme_with_snippet(readme: str) -> str:
    snippet = f"{BEGIN}\n```yaml\n{configmap()}```\n{END}"
    return re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: snippet, readme, flags=re.S)


def main() -> int:
    (HERE / "argocd-cm.yaml").write_text(configmap())
    readme = HERE / "README.md"
    readme.write_text(readme_with_snippet(readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
