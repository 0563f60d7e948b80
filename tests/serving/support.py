"""Fixtures for the model server's tests: iris models in every format, and the server as a real process.

Every server runs as the ``modelship-server`` console script of the venv running the tests, on a free
loopback port, and is stopped with SIGTERM at the end of its fixture's scope.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
SERVER = Path(sys.executable).parent / "modelship-server"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Iris:
    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    model: LogisticRegression


@pytest.fixture(scope="session")
def iris() -> Iris:
    x, y = load_iris(return_X_y=True)
    return Iris(x, y, LogisticRegression(max_iter=1000).fit(x, y))


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def skops_model(iris: Iris, models: Path) -> Path:
    path = models / "iris.skops"
    skops.io.dump(iris.model, path)
    return path


@pytest.fixture(scope="session")
def joblib_model(iris: Iris, models: Path) -> Path:
    path = models / "iris.joblib"
    joblib.dump(iris.model, path)
    return path


@pytest.fixture(scope="session")
def onnx_model(iris: Iris, models: Path) -> Path:
    from skl2onnx import to_onnx

    path = models / "iris.onnx"
    # skl2onnx's default output for probabilities is a list of {class: probability} maps (ZipMap).
    path.write_bytes(to_onnx(iris.model, iris.x[:1].astype(np.float32)).SerializeToString())
    return path


def slow_model(iris: Iris, path: Path, *, delay_s: float, marker: Path) -> Path:
    """A skops file holding a SlowClassifier: a type skops does not trust by default."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from modelship_test_types import SlowClassifier

    skops.io.dump(SlowClassifier(delay_s=delay_s, marker=str(marker)).fit(iris.x, iris.y), path)
    return path


SLOW_TYPE = "modelship_test_types.SlowClassifier"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """A modelship-server process on a free loopback port."""

    def __init__(self, args: Sequence[str], logs: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"127.0.0.1:{self.port}"
        self.logs = logs
        self.stdout = (logs / f"server-{self.port}.out").open("wb")
        self.stderr_path = logs / f"server-{self.port}.err"
        self.stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [str(SERVER), "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=self.stdout,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(HERE), **(env or {})},
        )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> Server:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.stderr_text()}")
            try:
                if self.request("GET", "/v2/health/ready", timeout=1.0).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout_s}s: {self.stderr_text()}")

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written to stdout so far."""
        self.stdout.flush()
        return [json.loads(line) for line in Path(self.stdout.name).read_text().splitlines() if line]

    def wait_for_log(self, message: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(line.get("message") == message for line in self.log_lines()):
            assert time.monotonic() < deadline, f"no {message!r} in the server log"
            time.sleep(0.1)

    def stderr_text(self) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> HttpResult:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return HttpResult(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()

    def post_json(self, path: str, doc: Any) -> HttpResult:
        return self.request("POST", path, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample in /metrics (0 when absent)."""
        text = self.request("GET", "/metrics").body.decode()
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            sample_labels = line[line.find("{") + 1 : line.rfind("}")] if "{" in line else ""
            if all(f'{key}="{value}"' in sample_labels for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self.stdout.close()
            self.stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        self.stderr.close()


class ServerFactory:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Server] = []

    def start(self, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> Server:
        server = Server(args, self.logs, env)
        self.started.append(server)
        return server.wait_ready() if ready else server

    def stop_all(self) -> None:
        for server in self.started:
            if server.process.poll() is None:
                try:
                    server.terminate(timeout_s=15)
                except subprocess.TimeoutExpired:
                    server.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers for one test; all are stopped when it ends."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def iris_server(skops_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server most protocol tests talk to: iris in skops, version 1, one worker."""
    factory = ServerFactory(tmp_path_factory.mktemp("iris-server"))
    server = factory.start(
        "--model-uri",
        skops_model.as_uri(),
        "--model-name",
        "iris",
        "--model-version",
        "1",
        "--sha256",
        sha256_of(skops_model),
        "--workers",
        "1",
        "--max-body-bytes",
        str(256 * 1024),
    )
    yield server
    factory.stop_all()


def run_to_failure(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the server expecting it not to start; returns the finished process."""
    return subprocess.run(
        [str(SERVER), "--host", "127.0.0.1", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )


def v2_request(rows: Sequence[Sequence[float]], outputs: Sequence[str] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP64",
                "data": [v for row in rows for v in row],
            }
        ]
    }
    if outputs:
        doc["outputs"] = [{"name": name} for name in outputs]
    return doc
