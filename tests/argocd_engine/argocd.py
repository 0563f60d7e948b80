"""Argo CD itself, for the tests: the processes `hack/argocd.sh` runs against the local cluster,
the `argocd` CLI talking to its API server, and `argocd-lua` (hack/argocd-lua), which runs our
argocd-cm Lua through Argo CD's own util/lua package."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.k8s import ENV, REPO, get_json, kubectl, wait_for

NAMESPACE = "argocd"
ARGOCD_CM = REPO / "argocd" / "argocd-cm.yaml"


class ArgoCDActionFailed(AssertionError):
    """Argo CD refused to run one of our actions (its Lua raised an error)."""


class ArgoCDUnavailable(RuntimeError):
    pass


def _exports(script: str, *args: str) -> dict[str, str]:
    out = subprocess.run([str(REPO / script), *args], capture_output=True, text=True, check=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return env


CLI_ENV = {**ENV, **_exports("hack/argocd.sh", "env")}


def ensure_argocd() -> None:
    """Starts (or reuses) Argo CD on the local cluster, with argocd/argocd-cm.yaml applied as it
    is now. Fails loudly: no skip when Argo CD cannot be built or started."""
    proc = subprocess.run(
        [str(REPO / "hack/argocd.sh"), "up"], capture_output=True, text=True, env=ENV, timeout=3600
    )
    if proc.returncode != 0:
        raise ArgoCDUnavailable(f"hack/argocd.sh up failed:\n{proc.stdout}\n{proc.stderr}")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The `argocd` CLI against the local API server (ARGOCD_SERVER and ARGOCD_OPTS from
    hack/argocd.sh env), as a platform engineer runs it."""
    proc = subprocess.run(["argocd", *args], capture_output=True, text=True, env=CLI_ENV, timeout=120)
    if check and proc.returncode != 0:
        failed = (
            ArgoCDActionFailed if "error executing Lua resource action" in proc.stderr else AssertionError
        )
        raise failed(f"argocd {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def engine(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs each request (op health/discovery/action on an object) through Argo CD's engine."""
    proc = subprocess.run(
        ["argocd-lua", str(ARGOCD_CM)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    if proc.returncode != 0:
        raise AssertionError(f"argocd-lua failed ({proc.returncode}):\n{proc.stderr}")
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(results) == len(requests)
    for req, res in zip(requests, results, strict=True):
        if req["op"] == "action" and "error" in res:
            raise ArgoCDActionFailed(f"Argo CD could not run action {req['action']}: {res['error']}")
    return results


def application(name: str) -> dict[str, Any]:
    app: dict[str, Any] = get_json("-n", NAMESPACE, "applications.argoproj.io", name)
    return app


def refresh(name: str) -> None:
    """What a git webhook does after a push: ask Argo CD to look at the repository now."""
    kubectl(
        "-n", NAMESPACE, "annotate", "--overwrite", "applications.argoproj.io", name,
        "argocd.argoproj.io/refresh=hard",
    )  # fmt: skip


@dataclass(frozen=True)
class AppState:
    """An Application as Argo CD's API reports it: sync status and revision, and the health it
    computed for the ModelDeployment (with our health.lua)."""

    sync: str | None
    revision: str | None
    health: str | None
    message: str | None


@dataclass
class GitOps:
    """A local git repository holding one ModelDeployment, and an Argo CD Application syncing it
    into `namespace` automatically."""

    namespace: str
    repo: Path
    app: str = field(init=False)

    def __post_init__(self) -> None:
        self.app = self.namespace
        self.repo.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        identity = ["-c", "user.name=Modelship tests", "-c", "user.email=tests@modelship.dev"]
        proc = subprocess.run(
            ["git", *identity, *args], cwd=self.repo, capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def commit(self, manifest: dict[str, Any], message: str) -> str:
        (self.repo / "iris.yaml").write_text(yaml.safe_dump(manifest))
        self.git("add", "iris.yaml")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def revert(self) -> str:
        self.git("revert", "--no-edit", "HEAD")
        return self.head()

    def create_application(self) -> None:
        app = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": self.app, "namespace": NAMESPACE},
            "spec": {
                "project": "default",
                "source": {"repoURL": f"file://{self.repo}", "path": ".", "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": self.namespace},
                "syncPolicy": {"automated": {}},
            },
        }
        kubectl("apply", "-f", "-", input=yaml.safe_dump(app))

    def delete_application(self) -> None:
        kubectl("-n", NAMESPACE, "delete", "applications.argoproj.io", self.app, "--wait=false", check=False)

    def refresh(self) -> None:
        refresh(self.app)

    def state(self) -> AppState:
        app = json.loads(cli("app", "get", self.app, "-o", "json").stdout)
        status = app.get("status") or {}
        sync = status.get("sync") or {}
        health: dict[str, Any] = {}
        for res in status.get("resources") or []:
            if res.get("kind") == "ModelDeployment" and res.get("name") == "iris":
                health = res.get("health") or {}
        return AppState(sync.get("status"), sync.get("revision"), health.get("status"), health.get("message"))

    def wait(self, what: str, timeout: float = 90, **want: Any) -> AppState:
        """Polls Argo CD until the Application's state has every field in `want`."""

        def probe() -> AppState | None:
            state = self.state()
            return state if all(getattr(state, k) == v for k, v in want.items()) else None

        return wait_for(f"Argo CD to show {what}", probe, timeout, interval=1)

    def action(self, name: str) -> None:
        """`argocd app actions run`: the CLI asks Argo CD's API server to run our action Lua on
        the live ModelDeployment and patch it."""
        cli(
            "app", "actions", "run", self.app, name,
            "--kind", "ModelDeployment", "--resource-name", "iris", "--namespace", self.namespace,
        )  # fmt: skip

    def enabled_actions(self) -> set[str]:
        out = cli(
            "app", "actions", "list", self.app, "--kind", "ModelDeployment", "--namespace", self.namespace,
            "-o", "json",
        ).stdout  # fmt: skip
        return {a["Action"] for a in json.loads(out) if not a["Disabled"]}
