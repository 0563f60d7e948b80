"""The same iris model saved three ways is served the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.serving.support import Iris, ServerFactory, sha256_of, v2_request


def _predict_and_proba(
    server_rows: list[list[float]], servers_started: ServerFactory, *args: str
) -> tuple[list[int], np.ndarray]:
    server = servers_started.start("--model-name", "iris", "--model-version", "7", "--workers", "1", *args)
    response = server.post_json(
        "/v2/models/iris/versions/7/infer", v2_request(server_rows, outputs=["predict", "predict_proba"])
    )
    assert response.status == 200, response.body
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    return outputs["predict"]["data"], proba


def test_a_skops_model_is_served(servers: ServerFactory, iris: Iris, skops_model: Path) -> None:
    rows = iris.x[[0, 60, 120]]
    predicted, proba = _predict_and_proba(rows.tolist(), servers, "--model-uri", str(skops_model))
    assert predicted == iris.model.predict(rows).tolist()
    np.testing.assert_allclose(proba, iris.model.predict_proba(rows), rtol=1e-12)


def test_an_onnx_model_is_served_with_its_probability_maps_as_a_tensor(
    servers: ServerFactory, iris: Iris, onnx_model: Path
) -> None:
    # Given the model converted by skl2onnx (float32, probabilities as ZipMap),
    rows = iris.x[[0, 60, 120]]
    predicted, proba = _predict_and_proba(rows.tolist(), servers, "--model-uri", onnx_model.as_uri())
    # then predictions match scikit-learn's and probabilities match to float32 precision.
    assert predicted == iris.model.predict(rows).tolist()
    np.testing.assert_allclose(proba, iris.model.predict_proba(rows), atol=1e-5)


def test_a_joblib_model_is_served_when_pickle_is_explicitly_allowed(
    servers: ServerFactory, iris: Iris, joblib_model: Path
) -> None:
    rows = iris.x[[0, 60, 120]]
    predicted, _ = _predict_and_proba(
        rows.tolist(), servers, "--model-uri", str(joblib_model), "--allow-unsafe-pickle"
    )
    assert predicted == iris.model.predict(rows).tolist()


def test_the_operators_environment_variables_configure_the_server(
    servers: ServerFactory, iris: Iris, skops_model: Path, tmp_path: Path
) -> None:
    # Given a skops file whose extension says nothing about its format,
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(skops_model.read_bytes())
    # when the server gets only the variables the operator sets (the format among them),
    server = servers.start(
        env={
            "MODELSHIP_MODEL_URI": renamed.as_uri(),
            "MODELSHIP_MODEL_NAME": "iris",
            "MODELSHIP_MODEL_VERSION": "3",
            "MODELSHIP_MODEL_FORMAT": "skops",
            "MODELSHIP_MODEL_SHA256": sha256_of(renamed),
            "MODELSHIP_WORKERS": "1",
        }
    )
    # then it serves that model under that name and version.
    response = server.post_json("/v2/models/iris/infer", v2_request(iris.x[:1].tolist()))
    assert response.status == 200
    assert response.json()["model_version"] == "3"
