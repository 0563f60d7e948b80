"""Property: no request body, however odd, makes the server answer 5xx or fall over."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.serving.support import Iris, Server, v2_request

FUZZ = settings(max_examples=200, deadline=None, database=None)
DATATYPES = [
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
numbers = st.integers(min_value=-300, max_value=300) | st.floats(allow_nan=False, allow_infinity=False)
tensor_data = (
    st.lists(numbers, max_size=12)
    | st.lists(st.lists(numbers, max_size=5), max_size=4)
    | st.lists(st.text(max_size=4), max_size=8)
    | st.lists(st.booleans(), max_size=8)
    | json_values
)
shapes = (
    st.lists(st.integers(min_value=-2, max_value=6), max_size=4)
    | st.lists(st.integers(min_value=-(2**66), max_value=2**66), max_size=3)
    | json_values
)
tensors = st.fixed_dictionaries(
    {
        "name": st.text(max_size=6) | json_values,
        "shape": shapes,
        "datatype": st.sampled_from(DATATYPES) | st.text(max_size=6),
        "data": tensor_data,
    },
    optional={
        "parameters": st.dictionaries(
            st.sampled_from(["binary_data_size", "content_type", "x"]), json_values, max_size=2
        )
    },
)
v2_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, min_size=0, max_size=2) | json_values},
    optional={
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["predict", "predict_proba", "x"])},
                optional={"parameters": json_values},
            ),
            max_size=3,
        )
        | json_values,
        "id": st.text(max_size=5) | json_values,
        "parameters": st.dictionaries(st.sampled_from(["binary_data_output", "x"]), json_values, max_size=2),
    },
)


def _post(server: Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _assert_client_error_or_success(status: int, body: bytes) -> None:
    assert status < 500, body
    if status >= 400:
        assert isinstance(json.loads(body)["error"], str)


@FUZZ
@given(doc=v2_bodies)
def test_v2_infer_with_near_valid_requests_never_fails_on_the_server_side(
    iris_server: Server, doc: Any
) -> None:
    _assert_client_error_or_success(*_post(iris_server, "/v2/models/iris/infer", json.dumps(doc).encode()))


@FUZZ
@given(doc=json_values)
def test_v2_and_v1_with_any_json_never_fail_on_the_server_side(iris_server: Server, doc: Any) -> None:
    body = json.dumps(doc).encode()
    _assert_client_error_or_success(*_post(iris_server, "/v2/models/iris/infer", body))
    _assert_client_error_or_success(*_post(iris_server, "/v1/models/iris:predict", body))


@FUZZ
@given(body=st.binary(max_size=300), header_length=st.none() | st.integers(min_value=0, max_value=400))
def test_v2_infer_with_any_bytes_never_fails_on_the_server_side(
    iris_server: Server, body: bytes, header_length: int | None
) -> None:
    headers = {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
    _assert_client_error_or_success(*_post(iris_server, "/v2/models/iris/infer", body, headers))


@FUZZ
@given(
    datatype=st.sampled_from(DATATYPES),
    shape=st.lists(st.integers(min_value=0, max_value=5), max_size=3),
    payload=st.binary(max_size=200),
    declared=st.none() | st.integers(min_value=-1, max_value=300),
    outputs=st.lists(st.sampled_from(["predict", "predict_proba"]), max_size=2),
    binary_out=st.booleans(),
)
def test_v2_infer_with_binary_tensors_never_fails_on_the_server_side(
    iris_server: Server,
    datatype: str,
    shape: list[int],
    payload: bytes,
    declared: int | None,
    outputs: list[str],
    binary_out: bool,
) -> None:
    # Binary tensor data (as tritonclient sends by default): any bytes, sizes right or wrong, NaN included.
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": shape,
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(payload) if declared is None else declared},
                }
            ],
            "outputs": [{"name": name, "parameters": {"binary_data": binary_out}} for name in outputs],
        }
    ).encode()
    _assert_client_error_or_success(
        *_post(
            iris_server,
            "/v2/models/iris/infer",
            header + payload,
            {"Inference-Header-Content-Length": str(len(header))},
        )
    )


@settings(max_examples=100, deadline=None, database=None)
@given(
    prefix=st.sampled_from(
        [b"", b"POST /v2/models/iris/infer HTTP/1.1\r\n", b"GET /v2 HTTP/1.1\r\nHost: x\r\n"]
    ),
    noise=st.binary(max_size=300),
)
def test_raw_bytes_on_the_socket_never_stop_the_server(
    iris_server: Server, prefix: bytes, noise: bytes
) -> None:
    # Whatever arrives on a connection, the server answers or closes it, and the next client is served.
    with socket.create_connection(("127.0.0.1", iris_server.port), timeout=10) as sock:
        sock.sendall(prefix + noise)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    for status_line in received.split(b"\r\n")[:1]:
        assert not status_line.startswith(b"HTTP/1.1 5"), received
    assert iris_server.request("GET", "/v2/health/live").status == 200


def test_after_the_fuzzing_the_server_still_answers_correctly(iris_server: Server, iris: Iris) -> None:
    # Runs after the properties above (file order): the process is the same one, and it still works.
    response = iris_server.post_json("/v2/models/iris/infer", v2_request(iris.x[:2].tolist()))
    assert response.status == 200
    assert response.json()["outputs"][0]["data"] == iris.model.predict(iris.x[:2]).tolist()
    assert iris_server.process.poll() is None
