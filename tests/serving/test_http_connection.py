"""HTTP/1.1 as clients and proxies use it: keep-alive, pipelining, HTTP/1.0, Expect: 100-continue, HEAD."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

from tests.serving.support import Iris, Server, ServerFactory, v2_request

INFER = "/v2/models/iris/infer"


def _request(
    method: str, path: str, body: bytes = b"", version: str = "HTTP/1.1", headers: str = ""
) -> bytes:
    return (
        f"{method} {path} {version}\r\nHost: test\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode()
        + body
    )


def _exchange(server: Server, data: bytes, *, half_close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _bodies(raw: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each response in a byte stream of HTTP/1.1 responses with Content-Length."""
    responses = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(
            int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")
        )
        responses.append((int(lines[0].split()[1]), rest[:length]))
        raw = rest[length:]
    return responses


def test_pipelined_requests_are_answered_in_order(iris_server: Server, iris: Iris) -> None:
    # Given three requests sent back to back on one connection, then the client's EOF,
    first, second = iris.x[0:1].tolist(), iris.x[100:101].tolist()
    data = (
        _request("POST", INFER, json.dumps(v2_request(first)).encode())
        + _request("GET", "/v2/health/live")
        + _request("POST", INFER, json.dumps(v2_request(second)).encode())
    )
    # when the server answers them all before closing,
    responses = _bodies(_exchange(iris_server, data, half_close=True))
    # then the answers come in the order of the requests.
    assert [status for status, _ in responses] == [200, 200, 200]
    assert json.loads(responses[0][1])["outputs"][0]["data"] == [0]
    assert json.loads(responses[1][1]) == {"live": True}
    assert json.loads(responses[2][1])["outputs"][0]["data"] == [2]


def test_a_keep_alive_connection_serves_many_requests(iris_server: Server, iris: Iris) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", iris_server.port, timeout=10)
    try:
        for row in iris.x[:5]:
            connection.request("POST", INFER, json.dumps(v2_request([row.tolist()])))
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()


def test_an_http_1_0_request_is_answered_and_closed(iris_server: Server) -> None:
    raw = _exchange(iris_server, _request("GET", "/v2/health/ready", version="HTTP/1.0"), half_close=False)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in raw


def test_expect_100_continue_is_honoured(iris_server: Server, iris: Iris) -> None:
    body = json.dumps(v2_request(iris.x[:1].tolist())).encode()
    with socket.create_connection(("127.0.0.1", iris_server.port), timeout=10) as sock:
        # Given a client that waits for permission before sending its body,
        sock.sendall(
            _request("POST", INFER, b"", headers="Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", f"Content-Length: {len(body)}".encode()
            )
        )
        # then it gets 100 Continue, and the answer once the body follows.
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


def test_head_gets_headers_without_a_body(iris_server: Server) -> None:
    response = iris_server.request("HEAD", "/v2/models/iris")
    assert response.status == 200
    assert response.body == b""
    assert int(response.headers["content-length"]) > 0


def test_a_client_that_stalls_mid_request_is_disconnected(servers: ServerFactory, skops_model: Path) -> None:
    # Given a one-second body timeout,
    server = servers.start(
        "--model-uri",
        str(skops_model),
        "--model-name",
        "iris",
        "--model-version",
        "1",
        "--workers",
        "1",
        "--body-timeout",
        "1",
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # when a client sends half a request and then nothing,
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        # then within a few seconds the server answers 408 and closes the connection.
        assert sock.recv(1024).startswith(b"HTTP/1.1 408 ")
        assert sock.recv(1024) == b""
        assert time.monotonic() - started < 5


def test_an_upgrade_request_is_answered_as_plain_http_once_and_the_connection_closed(
    iris_server: Server,
) -> None:
    # Given a client asking to switch the connection to WebSocket, then sending bytes of that protocol
    data = (
        _request("GET", "/v2/health/live", headers="Connection: Upgrade\r\nUpgrade: websocket\r\n")
        + b"\x81\x85not http"
    )
    # When the server (which speaks HTTP/1.1 only) answers
    responses = _bodies(_exchange(iris_server, data, half_close=False))
    # Then it ignores the Upgrade header, as RFC 9110 allows: one plain answer, no 101 and no error after
    # it, and it closes the connection, since what follows the request is not HTTP
    assert responses == [(200, b'{"live":true}')]


def test_a_connect_request_gets_one_answer_and_a_closed_connection(iris_server: Server) -> None:
    # Given a client that takes the server for a proxy, with bytes of a tunnel after its request
    data = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01tls hello"
    # When the server answers
    responses = _bodies(_exchange(iris_server, data, half_close=False))
    # Then one answer refuses it (no tunnel is opened, and nothing after it is read as HTTP)
    assert len(responses) == 1 and 400 <= responses[0][0] < 500, responses
