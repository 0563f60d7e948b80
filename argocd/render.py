"""Renders the argocd-cm entries from the Lua files: `python argocd/render.py` rewrites
argocd/argocd-cm.yaml and the snippet in argocd/README.md. tests/argocd checks both are current."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUP_KIND = "modelship.dev_ModelDeployment"
ACTIONS = ("promote", "promote-full", "abort", "retry", "pause", "resume")
# One-shot actions: the same script (actions/token.lua) with its own action name and summary.
TOKEN_ACTIONS = {
    "promote": "continue a rollout waiting at a pause without a duration",
    "promote-full": "skip every remaining canary step",
    "abort": "stop the rollout; the stable version takes all traffic back",
    "retry": "roll out again the version whose rollout failed",
}
BEGIN, END = "<!-- argocd-cm:begin -->", "<!-- argocd-cm:end -->"


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    return "".join(pad + line if line.strip() else "\n" for line in text.splitlines(keepends=True))


def action_script(name: str) -> str:
    """The Lua that Argo CD runs for action `name`."""
    if name not in TOKEN_ACTIONS:
        return (HERE / "actions" / name / "action.lua").read_text()
    template = (HERE / "actions/token.lua").read_text()
    body = template[template.index("local action") :].replace("__ACTION__", name)
    return (
        f'-- Argo CD resource action "{name}" for modelship.dev/ModelDeployment: {TOKEN_ACTIONS[name]}.\n'
        f"-- Writes a fresh token to the modelship.dev/{name} annotation and touches nothing else; the operator\n"
        f'-- acts once on a token that differs from status.handledActions["{name}"].\n' + body
    )


def actions_value() -> str:
    """The value of resource.customizations.actions.<group_kind>: itself a YAML document."""
    out = "discovery.lua: |\n" + _block((HERE / "actions/discovery.lua").read_text(), 2)
    out += "definitions:\n"
    for name in ACTIONS:
        out += f"- name: {name}\n  action.lua: |\n"
        out += _block(action_script(name), 4)
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
