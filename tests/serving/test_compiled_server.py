"""The compiled predict path as a client and an operator see it: the answers, the metadata, /metrics and
the log line saying which path serves and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier

from tests.serving.support import Iris, Server, ServerFactory, run_to_failure, v2_request

INFER = "/v2/models/iris/infer"


def _start(servers: ServerFactory, model: Path, *args: str) -> Server:
    return servers.start("--model-uri", str(model), "--model-name", "iris", "--model-version", "1", *args)


def _path_in_metadata(server: Server) -> str:
    metadata = server.request("GET", "/v2/models/iris").json()
    path: str = metadata["parameters"]["predict_path"]
    return path


def _answers(server: Server, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
    response = server.post_json(INFER, v2_request(rows.tolist(), outputs=["predict", "predict_proba"]))
    assert response.status == 200, response.body
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    return outputs["predict"]["data"], proba


def test_by_default_a_verified_graph_serves_and_says_so(
    servers: ServerFactory, iris: Iris, skops_model: Path
) -> None:
    # Given the iris logistic regression served with default settings,
    server = _start(servers, skops_model, "--workers", "1")
    # then the metadata, /metrics and the log name the float64 graph,
    assert _path_in_metadata(server) == "onnx-float64"
    assert server.metric("model_predict_path_info", model_version="1", path="onnx-float64") == 1
    [verified] = [line for line in server.log_lines() if line["message"] == "compiled predict path verified"]
    assert verified["predict_path"] == "onnx-float64" and "verified on" in verified["reason"]
    # and the answers are scikit-learn's: the same classes, probabilities to float64 rounding.
    predicted, proba = _answers(server, iris.x)
    assert predicted == iris.model.predict(iris.x).tolist()
    np.testing.assert_allclose(proba, iris.model.predict_proba(iris.x), rtol=1e-9, atol=1e-12)


def test_compile_off_serves_with_scikit_learn(servers: ServerFactory, iris: Iris, skops_model: Path) -> None:
    # Given the same model served with the compiled path switched off (by its environment variable),
    server = servers.start(
        "--model-uri",
        str(skops_model),
        "--model-name",
        "iris",
        "--model-version",
        "1",
        "--workers",
        "1",
        env={"MODELSHIP_COMPILE": "off"},
    )
    # then scikit-learn serves, as metadata and /metrics say, and its answers are exact.
    assert _path_in_metadata(server) == "sklearn"
    assert server.metric("model_predict_path_info", model_version="1", path="sklearn") == 1
    predicted, proba = _answers(server, iris.x[:5])
    assert predicted == iris.model.predict(iris.x[:5]).tolist()
    np.testing.assert_array_equal(proba, iris.model.predict_proba(iris.x[:5]))


def test_a_model_that_cannot_be_compiled_is_served_by_scikit_learn_with_one_log_line(
    servers: ServerFactory, iris: Iris, tmp_path: Path
) -> None:
    # Given a model no converter is trusted with,
    model = HistGradientBoostingClassifier(max_iter=10).fit(iris.x, iris.y)
    path = tmp_path / "hist.skops"
    skops.io.dump(model, path)
    # when it is served,
    server = _start(servers, path, "--workers", "1")
    # then it starts and answers like scikit-learn,
    predicted, _ = _answers(server, iris.x[:5])
    assert predicted == model.predict(iris.x[:5]).tolist()
    # one warning says why the compiled path is not used, and metadata and /metrics say scikit-learn.
    warnings = [line for line in server.log_lines() if line["logger"] == "modelship_server.loading"]
    assert [(line["level"], line["message"]) for line in warnings] == [
        ("warning", "compiled predict path not used; scikit-learn serves")
    ]
    assert "HistGradientBoostingClassifier" in warnings[0]["reason"]
    assert _path_in_metadata(server) == "sklearn"
    assert server.metric("model_predict_path_info", model_version="1", path="sklearn") == 1


def test_with_two_workers_each_compiles_and_the_metric_is_one_series(
    servers: ServerFactory, iris: Iris, skops_model: Path
) -> None:
    # Given two worker processes, each loading the model itself,
    server = _start(servers, skops_model, "--workers", "2")
    # then both serve from the graph (one line each), and /metrics shows one series for the version.
    server.wait_for_log("all workers ready")
    verified = [line for line in server.log_lines() if line["message"] == "compiled predict path verified"]
    assert len(verified) == 2
    text = server.request("GET", "/metrics").body.decode()
    series = [line for line in text.splitlines() if line.startswith("model_predict_path_info{")]
    assert len(series) == 1 and 'path="onnx-float64"' in series[0]


@pytest.mark.parametrize("compile_setting", ["auto", "off"])
def test_an_onnx_file_keeps_its_own_path(
    servers: ServerFactory, onnx_model: Path, compile_setting: str
) -> None:
    server = _start(servers, onnx_model, "--workers", "1", "--compile", compile_setting)
    assert _path_in_metadata(server) == "onnx"
    assert server.metric("model_predict_path_info", model_version="1", path="onnx") == 1


def test_a_bad_compile_value_stops_start_up_with_one_line(skops_model: Path) -> None:
    result = run_to_failure(
        "--model-uri", str(skops_model), "--model-name", "iris", "--model-version", "1", "--compile", "fast"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "modelship-server: error: invalid --compile 'fast': must be auto or off"
    ]
