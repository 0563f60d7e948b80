"""Whatever a client sends, it gets a 4xx with a JSON error that says what is wrong, and the server goes on."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import pytest

from tests.serving.support import Iris, Server, v2_request

INFER = "/v2/models/iris/infer"
GOOD_ROW = [[5.1, 3.5, 1.4, 0.2]]


def _tensor(**fields: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": GOOD_ROW[0]}
    tensor.update(fields)
    return {"inputs": [tensor]}


def _body(doc: Any) -> bytes:
    return doc if isinstance(doc, bytes) else json.dumps(doc).encode()


CASES = [
    # (id, path, body, status, phrase in the error)
    ("invalid-json", INFER, b'{"inputs": [', 400, "not valid JSON"),
    ("not-an-object", INFER, [1, 2, 3], 400, "JSON object"),
    ("no-inputs", INFER, {}, 400, "'inputs' must be a non-empty list"),
    ("empty-inputs", INFER, {"inputs": []}, 400, "'inputs' must be a non-empty list"),
    ("two-inputs", INFER, {"inputs": [_tensor()["inputs"][0]] * 2}, 400, "one input tensor"),
    (
        "input-without-data",
        INFER,
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]},
        400,
        "has no 'data'",
    ),
    (
        "input-without-name",
        INFER,
        {"inputs": [{"shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]},
        400,
        "'name'",
    ),
    ("wrong-feature-count", INFER, _tensor(shape=[1, 3], data=[1, 2, 3]), 400, "takes shape [N, 4]"),
    ("rank-three", INFER, _tensor(shape=[1, 2, 2]), 400, "takes shape [N, 4]"),
    ("shape-and-data-disagree", INFER, _tensor(shape=[2, 4]), 400, "needs 8 values"),
    ("negative-shape", INFER, _tensor(shape=[-1, 4]), 400, "non-negative integers"),
    ("no-rows", INFER, _tensor(shape=[0, 4], data=[]), 400, "no rows"),
    ("ragged-data", INFER, _tensor(shape=[2, 2], data=[[1, 2], [3]]), 400, "not a regular array"),
    ("unknown-datatype", INFER, _tensor(datatype="FLOAT"), 400, "is not one of BOOL"),
    ("strings-as-fp64", INFER, _tensor(data=["a", "b", "c", "d"]), 400, "cannot hold strings"),
    ("booleans-as-fp64", INFER, _tensor(data=[True, False, True, False]), 400, "cannot hold booleans"),
    ("out-of-range-int8", INFER, _tensor(datatype="INT8", data=[1, 2, 3, 300]), 400, "out of range for INT8"),
    ("bytes-for-numbers", INFER, _tensor(datatype="BYTES", data=["1", "2", "3", "4"]), 400, "takes numbers"),
    (
        "unknown-output",
        INFER,
        {**_tensor(), "outputs": [{"name": "decision_function"}]},
        400,
        "unknown output 'decision_function'",
    ),
    ("non-string-id", INFER, {**_tensor(), "id": 7}, 400, "'id' must be a string"),
    ("unknown-model", "/v2/models/roses/infer", _tensor(), 404, "model 'roses' not found"),
    ("unknown-version", "/v2/models/iris/versions/9/infer", _tensor(), 404, "no version '9'"),
    ("unknown-endpoint", "/v2/models/iris/explain", _tensor(), 404, "no endpoint"),
    ("v1-without-instances", "/v1/models/iris:predict", {"rows": []}, 400, "'instances'"),
    ("v1-strings", "/v1/models/iris:predict", {"instances": [["a", "b", "c", "d"]]}, 400, "numbers"),
]


@pytest.mark.parametrize("path, doc, status, phrase", [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_request_gets_a_clear_4xx_and_the_server_keeps_serving(
    iris_server: Server, iris: Iris, path: str, doc: Any, status: int, phrase: str
) -> None:
    # When the malformed request is posted,
    response = iris_server.request("POST", path, _body(doc), {"Content-Type": "application/json"})
    # then the status and the message say what is wrong, with the model version attached,
    assert response.status == status, response.body
    assert phrase in response.json()["error"]
    assert response.headers["modelship-model-version"] == "1"
    # and a good request right after is answered.
    _assert_still_serving(iris_server, iris)


def test_the_wrong_method_gets_405_with_the_allowed_one(iris_server: Server, iris: Iris) -> None:
    response = iris_server.request("GET", INFER)
    assert response.status == 405
    assert response.headers["allow"] == "POST"
    assert "GET is not allowed" in response.json()["error"]


def test_binary_data_with_a_header_length_past_the_body_is_400(iris_server: Server, iris: Iris) -> None:
    response = iris_server.request(
        "POST", INFER, b'{"inputs": []}', {"Inference-Header-Content-Length": "500"}
    )
    assert response.status == 400
    assert "does not fit" in response.json()["error"]
    _assert_still_serving(iris_server, iris)


def test_values_the_model_refuses_are_a_client_error(iris_server: Server, iris: Iris) -> None:
    # Given a binary FP64 tensor holding NaN (JSON cannot carry one), which the model refuses,
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<4d", 1.0, float("nan"), 2.0, 3.0)
    response = iris_server.request("POST", INFER, body, {"Inference-Header-Content-Length": str(len(header))})
    # then the model's own complaint comes back as a 400.
    assert response.status == 400
    assert "the model rejected the input" in response.json()["error"]
    assert "NaN" in response.json()["error"]
    _assert_still_serving(iris_server, iris)


def test_an_oversized_body_is_refused_before_it_is_read(iris_server: Server, iris: Iris) -> None:
    # Given a limit of 256 KiB, when a client announces a 1 MiB body (and sends only the headers),
    reply = _raw_exchange(
        iris_server,
        b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n",
    )
    # then it gets 413 at once, as JSON.
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b'{"error":"the request body is larger than 262144 bytes"}' in reply
    _assert_still_serving(iris_server, iris)


def test_an_oversized_chunked_body_is_cut_off(iris_server: Server, iris: Iris) -> None:
    # Given a body with no declared length, the bytes are counted as they arrive.
    chunk = b"x" * 65536
    request = b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    request += (b"10000\r\n" + chunk + b"\r\n") * 5
    reply = _raw_exchange(iris_server, request)
    assert reply.startswith(b"HTTP/1.1 413 ")
    _assert_still_serving(iris_server, iris)


def test_garbage_instead_of_http_gets_400(iris_server: Server, iris: Iris) -> None:
    reply = _raw_exchange(iris_server, b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"malformed HTTP request" in reply
    _assert_still_serving(iris_server, iris)


def test_huge_headers_get_431(iris_server: Server, iris: Iris) -> None:
    reply = _raw_exchange(iris_server, b"GET /v2 HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    _assert_still_serving(iris_server, iris)


def _raw_exchange(server: Server, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _assert_still_serving(server: Server, iris: Iris) -> None:
    response = server.post_json(INFER, v2_request(iris.x[:1].tolist()))
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == iris.model.predict(iris.x[:1]).tolist()
