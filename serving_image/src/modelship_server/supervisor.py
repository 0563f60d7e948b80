"""Several worker processes behind one port.

Each worker is a fresh interpreter (not a fork: onnxruntime and BLAS thread pools do not survive fork)
that loads the verified file itself and listens on the port with SO_REUSEPORT, so the kernel spreads
connections evenly. Metrics from all workers meet in PROMETHEUS_MULTIPROC_DIR.

The supervisor forwards SIGTERM/SIGINT to the workers and exits 0 once all drained; a worker that dies
while serving is restarted, unless workers keep dying (then the supervisor stops and exits 1, and
Kubernetes restarts the pod).
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import FrameType

from modelship_server.artifact import LocalArtifact
from modelship_server.errors import StartupError
from modelship_server.settings import Settings

log = logging.getLogger(__name__)

_RESTART_WINDOW_S = 60.0
_MAX_RESTARTS_IN_WINDOW = 5


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int
    ready: bool = False
    terminated: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, settings: Settings, artifact: LocalArtifact) -> None:
        self.settings = settings
        self.artifact = artifact
        self.stopping = False
        self.workers: list[_Worker] = []
        self.restarts: list[float] = []

    def run(self) -> int:
        metrics_dir = tempfile.mkdtemp(prefix="modelship-metrics-")
        previous = {
            signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            env = {
                **os.environ,
                **self.settings.to_env(),
                "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
                "MODELSHIP_WORKER_MODEL_PATH": str(self.artifact.location),
                "MODELSHIP_WORKER_MODEL_SHA256": self.artifact.sha256,
                "MODELSHIP_MODEL_FORMAT": self.artifact.format,
            }
            self.workers = [self._spawn(index, env) for index in range(self.settings.workers)]
            return self._watch(env)
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("stopping workers", extra={"signal": signal.Signals(signum).name})
        self.stopping = True
        for worker in self.workers:
            self._terminate(worker)

    @staticmethod
    def _terminate(worker: _Worker) -> None:
        # Once only: a second SIGTERM could reach a worker after its loop ended and kill it mid-exit.
        if not worker.terminated and worker.process.poll() is None:
            worker.terminated = True
            worker.process.send_signal(signal.SIGTERM)

    def _spawn(self, index: int, env: dict[str, str]) -> _Worker:
        read_fd, write_fd = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "modelship_server.worker"],
            env={**env, "MODELSHIP_WORKER_READY_FD": str(write_fd), "MODELSHIP_WORKER_INDEX": str(index)},
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
        )
        os.close(write_fd)
        return _Worker(index, process, read_fd)

    def _watch(self, env: dict[str, str]) -> int:
        logged_ready = False
        while not self.stopping:
            waiting = {w.ready_fd: w for w in self.workers if not w.ready and w.ready_fd >= 0}
            if waiting:
                readable, _, _ = select.select(list(waiting), [], [], 0.2)
                for fd in readable:
                    worker = waiting[fd]
                    report = os.read(fd, 4096)
                    os.close(fd)
                    worker.ready_fd = -1
                    if report.startswith(b"E"):
                        raise StartupError(report[1:].decode(errors="replace"))
                    worker.ready = report == b"1"
            else:
                time.sleep(0.2)
            if not logged_ready and all(w.ready for w in self.workers):
                log.info("all workers ready", extra={"workers": len(self.workers)})
                logged_ready = True
            for position, worker in enumerate(self.workers):
                code = worker.process.poll()
                if code is None or self.stopping:
                    continue
                if not worker.ready:
                    raise StartupError(f"worker {worker.index} exited with code {code} before it was ready")
                self._note_restart(worker, code)
                self.workers[position] = self._spawn(worker.index, env)
        return 0 if self._stop_all() else 1

    def _note_restart(self, worker: _Worker, code: int) -> None:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < _RESTART_WINDOW_S] + [now]
        log.error("worker died; restarting it", extra={"worker": worker.index, "exit_code": code})
        if len(self.restarts) > _MAX_RESTARTS_IN_WINDOW:
            raise StartupError(f"workers died {len(self.restarts)} times within {_RESTART_WINDOW_S:.0f}s")

    def _stop_all(self) -> bool:
        """SIGTERM every worker and wait for it to drain; True when all exited cleanly."""
        clean = True
        deadline = time.monotonic() + self.settings.drain_timeout_s + 5.0
        for worker in self.workers:
            self._terminate(worker)
        for worker in self.workers:
            try:
                code = worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                code = worker.process.wait()
            if worker.ready_fd >= 0:
                os.close(worker.ready_fd)
                worker.ready_fd = -1
            # A worker still loading when SIGTERM came dies of it: it had nothing to drain.
            worker_clean = code == 0 or (code == -signal.SIGTERM and not worker.ready)
            if not worker_clean:
                log.error("worker exited uncleanly", extra={"worker": worker.index, "exit_code": code})
            clean = clean and worker_clean
        self.workers = []
        return clean
