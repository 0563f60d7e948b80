"""Keeps the local cluster's control-plane processes running, as a kubelet keeps static pods running.

kwokctl (binary runtime) starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok-controller once and records each one's command line (`kwok.yaml`, `components`) and pid
(`pids/<binary>.pid`). Nothing restarts them: a controller-manager that loses its lease while etcd
is slow exits, as it is designed to, and the cluster then does nothing. This loop restarts any of
them that is gone, with the same binary, arguments, directory and environment, and writes the new
pid where kwokctl looks for it (so `kwokctl` and `hack/cluster.sh` keep seeing the cluster).

    python hack/supervise.py CLUSTER_DIR      (hack/cluster.sh up starts it; down stops it)

A process that exits again soon after a restart waits longer before the next one (1 s doubling up
to 30 s, as a kubelet's crash-loop back-off); one that ran for a minute starts afresh. The crashed
process's log is kept as `logs/<name>.previous.log` (kwokctl truncates the log on start). A stopped
(SIGSTOP) process is alive and left alone: freezing etcd is a fault the tests inject on purpose.
The loop ends on SIGTERM, leaving the components running, or when the cluster's directory is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLL_SECONDS = 0.5
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0
HEALTHY_AFTER_SECONDS = 60.0


@dataclass
class Component:
    name: str
    binary: str
    args: list[str]
    work_dir: Path
    env: dict[str, str]
    backoff: float = BACKOFF_MIN
    started_at: float = 0.0
    not_before: float = 0.0
    child: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.work_dir / "pids" / f"{Path(self.binary).name}.pid"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "logs" / f"{Path(self.binary).name}.log"


def components(cluster_dir: Path) -> list[Component]:
    """The command lines kwokctl recorded when it created the cluster."""
    with (cluster_dir / "kwok.yaml").open() as f:
        config = next(d for d in yaml.safe_load_all(f) if d and d.get("kind") == "KwokctlConfiguration")
    found: list[Component] = []
    for raw in config.get("components") or []:
        env = {e["name"]: str(e.get("value", "")) for e in raw.get("envs") or []}
        work_dir = Path(raw.get("workDir") or cluster_dir)
        found.append(Component(raw["name"], raw["binary"], list(raw.get("args") or []), work_dir, env))
    return found


def alive(component: Component) -> bool:
    """The recorded pid is a live (or stopped) process of this binary; a zombie or a reused pid
    is not. kwokctl's own check (signal 0) counts zombies as running, which is why this reads /proc."""
    try:
        pid = int(component.pid_file.read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, ValueError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and argv0 == component.binary


def restart(component: Component, now: float) -> None:
    if component.log_file.exists():
        component.log_file.replace(component.log_file.with_suffix(".previous.log"))
    with component.log_file.open("ab") as log:
        component.child = subprocess.Popen(
            [component.binary, *component.args],
            cwd=component.work_dir,
            env={**os.environ, **component.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session, as kwokctl starts them: stopping this loop leaves it running.
            start_new_session=True,
        )
    component.pid_file.write_text(str(component.child.pid))
    # A process that dies again before it ran a while is crash-looping: wait longer next time.
    if now - component.started_at < HEALTHY_AFTER_SECONDS:
        component.backoff = min(BACKOFF_MAX, component.backoff * 2)
    else:
        component.backoff = BACKOFF_MIN
    component.started_at = now
    component.not_before = now + component.backoff


def say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}", flush=True)


def supervise(cluster_dir: Path) -> None:
    watched = components(cluster_dir)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say(f"supervising {', '.join(c.name for c in watched)} in {cluster_dir}")
    started = time.monotonic()
    for component in watched:
        component.started_at = started  # they were running when we began
    while not stopping:
        if not (cluster_dir / "kwok.yaml").exists():
            say("the cluster's directory is gone: stopping")
            return
        for component in watched:
            if component.child is not None and component.child.poll() is not None:
                say(f"{component.name} (pid {component.child.pid}) exited with {component.child.returncode}")
                component.child = None  # reaped
            now = time.monotonic()
            if alive(component) or now < component.not_before:
                continue
            restart(component, now)
            say(f"{component.name} was not running: restarted it (pid {component.pid_file.read_text()})")
        time.sleep(POLL_SECONDS)
    say("stopped (the components keep running)")


if __name__ == "__main__":
    supervise(Path(sys.argv[1]))
