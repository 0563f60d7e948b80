"""KServe V1: the older protocol many clients still speak."""

from __future__ import annotations

from tests.serving.support import Iris, Server


def test_v1_predict_returns_one_prediction_per_instance(iris_server: Server, iris: Iris) -> None:
    # Given two flowers as V1 instances, when they are posted to :predict,
    rows = iris.x[[0, 100]]
    response = iris_server.post_json("/v1/models/iris:predict", {"instances": rows.tolist()})
    # then the predictions are the model's classes for them, and the version is in a header.
    assert response.status == 200
    assert response.json() == {"predictions": iris.model.predict(rows).tolist()}
    assert response.headers["modelship-model-version"] == "1"


def test_v1_model_status_says_ready(iris_server: Server) -> None:
    response = iris_server.request("GET", "/v1/models/iris")
    assert response.status == 200
    assert response.json() == {"name": "iris", "ready": True}


def test_v1_predict_of_an_unknown_model_is_404(iris_server: Server) -> None:
    response = iris_server.post_json("/v1/models/roses:predict", {"instances": [[1, 2, 3, 4]]})
    assert response.status == 404
    assert "roses" in response.json()["error"]
