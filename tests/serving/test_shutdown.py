"""SIGTERM: stop accepting, finish what is in flight, exit 0 (what Kubernetes expects of a pod)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.serving.support import SLOW_TYPE, HttpResult, Iris, Server, ServerFactory, slow_model, v2_request


def _wait_for(path: Path, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _connection_refused_soon(server: Server, timeout_s: float = 1.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                pass
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_drains_the_in_flight_request_refuses_new_ones_and_exits_0(
    servers: ServerFactory, iris: Iris, tmp_path: Path, workers: str
) -> None:
    # Given a model whose predict takes 3 s, and a request that has reached it,
    marker = tmp_path / "predict-started"
    model = slow_model(iris, tmp_path / "slow.skops", delay_s=3.0, marker=marker)
    server = servers.start(
        "--model-uri",
        str(model),
        "--trusted-type",
        SLOW_TYPE,
        "--model-name",
        "iris",
        "--model-version",
        "1",
        "--workers",
        workers,
    )
    with ThreadPoolExecutor(1) as pool:
        in_flight: Future[HttpResult] = pool.submit(
            server.post_json, "/v2/models/iris/infer", v2_request(iris.x[:1].tolist())
        )
        _wait_for(marker)
        # When the server gets SIGTERM,
        server.process.send_signal(signal.SIGTERM)
        # then new connections are refused while that request is still running,
        assert _connection_refused_soon(server)
        assert not in_flight.done()
        # and the request still gets its answer.
        response = in_flight.result(timeout=15)
    assert response.status == 200
    assert response.json()["outputs"][0]["data"] == iris.model.predict(iris.x[:1]).tolist()
    # Finally the process exits 0.
    assert server.process.wait(timeout=15) == 0


def test_sigterm_on_an_idle_server_exits_0_promptly(
    iris: Iris, servers: ServerFactory, skops_model: Path
) -> None:
    server = servers.start(
        "--model-uri", str(skops_model), "--model-name", "iris", "--model-version", "1", "--workers", "1"
    )
    # Given a keep-alive connection that is open but idle,
    idle = socket.create_connection(("127.0.0.1", server.port))
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    # then the server closes it rather than waiting on it, and exits 0 quickly.
    assert server.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    idle.settimeout(5)
    assert idle.recv(1) == b""
    idle.close()


def test_a_worker_that_dies_is_replaced_and_the_server_keeps_serving(
    servers: ServerFactory, iris: Iris, skops_model: Path
) -> None:
    # Given two workers,
    server = servers.start(
        "--model-uri", str(skops_model), "--model-name", "iris", "--model-version", "1", "--workers", "2"
    )
    server.wait_for_log("all workers ready")
    workers = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    assert len(workers) == 2
    # when one of them is killed,
    os.kill(int(workers[0]), signal.SIGKILL)
    # then the supervisor says so and starts another,
    server.wait_for_log("worker died; restarting it")
    deadline = time.monotonic() + 60
    while len(Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()) < 2:
        assert time.monotonic() < deadline, "no replacement worker"
        time.sleep(0.1)
    # and requests are still answered, by whichever worker gets them.
    for _ in range(10):
        assert server.post_json("/v2/models/iris/infer", v2_request(iris.x[:1].tolist())).status == 200
    assert server.terminate() == 0


def test_a_keep_alive_client_busy_through_sigterm_gets_every_answer_then_a_clean_close(
    iris: Iris, servers: ServerFactory, skops_model: Path
) -> None:
    server = servers.start(
        "--model-uri", str(skops_model), "--model-name", "iris", "--model-version", "1", "--workers", "1"
    )
    # Given a client that sends a request every 50 ms on one keep-alive connection
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = json.dumps(v2_request(iris.x[:1].tolist()))
    statuses: list[int] = []

    def one_request() -> str | None:
        conn.request("POST", "/v2/models/iris/infer", body, {"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        return response.getheader("connection")

    for _ in range(5):
        one_request()
    # When the server gets SIGTERM while that client keeps going
    server.process.send_signal(signal.SIGTERM)
    closing = None
    deadline = time.monotonic() + 10
    while closing is None and time.monotonic() < deadline:
        time.sleep(0.05)
        closing = one_request()
    conn.close()
    # Then every request was answered 200 (none refused, reset or dropped), the server said
    # `connection: close` on an answer rather than closing under the client, and it exits 0
    assert closing == "close"
    assert set(statuses) == {200}, statuses
    assert server.process.wait(timeout=15) == 0
