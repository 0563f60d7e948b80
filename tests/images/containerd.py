"""A throwaway containerd for the image tests, and `ctr` run against it.

It has its own root, state and socket under a temporary directory, so it never meets the real node's
containerd; it is stopped and its directories (and any mount left under them) removed at the end.
Containers run with runc through `ctr run`, as the kubelet would run them through the CRI: the image's
own user, environment and working directory, a read-only root where asked, host networking so the
test reaches the server on loopback.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
IMAGES_SCRIPT = REPO / "hack" / "images.sh"
NAMESPACE = "k8s.io"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def config_toml(root: Path) -> str:
    return f"""version = 2
root = "{root}/root"
state = "{root}/state"
[grpc]
  address = "{root}/containerd.sock"
[ttrpc]
  address = "{root}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/root/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # The VM's bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
"""


@dataclass
class Containerd:
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return str(self.root / "containerd.sock")

    def ctr_command(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args]

    def ctr(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ctr_command(*args), capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def image_digests(self) -> dict[str, str]:
        """Each image name in the k8s.io namespace, with the digest of its manifest."""
        listing = self.ctr("images", "ls")
        assert listing.returncode == 0, listing.stderr
        rows = [line.split() for line in listing.stdout.splitlines()[1:] if line.strip()]
        return {row[0]: row[2] for row in rows}

    def blob(self, digest: str) -> Any:
        got = self.ctr("content", "get", digest)
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout)

    def image_config(self, name: str) -> dict[str, Any]:
        """The OCI image config (`config` part: User, Entrypoint, Env...) the runtime starts from."""
        manifest = self.blob(self.image_digests()[name])
        config: dict[str, Any] = self.blob(manifest["config"]["digest"])["config"]
        return config

    def task_pid(self, container_id: str) -> int | None:
        listing = self.ctr("tasks", "ls")
        for row in (line.split() for line in listing.stdout.splitlines()[1:]):
            if row and row[0] == container_id and row[2] == "RUNNING":
                return int(row[1])
        return None

    def run_command(
        self, image: str, container_id: str, args: Sequence[str], mounts: Sequence[str] = ()
    ) -> list[str]:
        """`ctr run` of ARGS (which replace the image's entrypoint) with a read-only root."""
        mount_flags = [flag for mount in mounts for flag in ("--mount", mount)]
        return self.ctr_command(
            "run", "--rm", "--net-host", "--read-only", *mount_flags, image, container_id, *args
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Snapshots leave overlay mounts behind when a container was not removed: unmount, deepest first.
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_containerd(root: Path) -> Containerd:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(config_toml(root))
    log = (root / "containerd.log").open("wb")
    process = subprocess.Popen(
        ["containerd", "--config", str(root / "config.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    containerd = Containerd(root, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while containerd.ctr("version", timeout_s=5).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            last_lines = (root / "containerd.log").read_text()[-2000:]
            containerd.stop()
            raise AssertionError(f"containerd did not start: {last_lines}")
        time.sleep(0.2)
    return containerd
