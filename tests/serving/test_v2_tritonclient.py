"""An independent V2 client, Triton's tritonclient[http], talks to the server as it would to Triton."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton

from tests.serving.support import Iris, Server


@pytest.fixture
def client(iris_server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(iris_server.url)


def _input(rows: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def test_the_server_is_live_and_ready(client: triton.InferenceServerClient) -> None:
    # Given a started server, when a V2 client asks for health, then both checks pass.
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")


def test_metadata_describes_the_model(client: triton.InferenceServerClient) -> None:
    # When the client reads the model's metadata,
    metadata = client.get_model_metadata("iris")
    # then it names the version, the input (4 features, FP64) and both outputs.
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]


def test_server_metadata_lists_the_binary_extension(client: triton.InferenceServerClient) -> None:
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_an_unknown_model_is_not_ready(client: triton.InferenceServerClient) -> None:
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_returns_the_predicted_classes(
    client: triton.InferenceServerClient, iris: Iris, binary: bool
) -> None:
    # Given three flowers, when the client infers without naming outputs (JSON or binary tensors),
    rows = iris.x[[0, 60, 120]]
    result = client.infer("iris", [_input(rows, binary)])
    # then it gets "predict", the classes the model predicts in-process, and the version.
    np.testing.assert_array_equal(result.as_numpy("predict"), iris.model.predict(rows))
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_returns_probabilities_when_asked(
    client: triton.InferenceServerClient, iris: Iris, binary: bool
) -> None:
    # When the client asks for the predict_proba output by name,
    rows = iris.x[[5, 75]]
    result = client.infer(
        "iris",
        [_input(rows, binary)],
        model_version="1",
        outputs=[triton.InferRequestedOutput("predict_proba", binary_data=binary)],
    )
    # then it gets one row of class probabilities per flower, as the model computes them.
    np.testing.assert_allclose(result.as_numpy("predict_proba"), iris.model.predict_proba(rows), rtol=1e-12)
    assert result.as_numpy("predict") is None


def test_infer_echoes_the_request_id(client: triton.InferenceServerClient, iris: Iris) -> None:
    result = client.infer("iris", [_input(iris.x[:1], False)], request_id="req-42")
    assert result.get_response()["id"] == "req-42"
