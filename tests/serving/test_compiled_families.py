"""The compiled predict path, in process: for each estimator family it gives scikit-learn's answers on
held-out rows; what it cannot serve exactly stays with scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, is_classifier
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from modelship_server.compiled import ATOL, RTOL, SKLEARN, compile_predictor
from modelship_server.predictor import PREDICT, PREDICT_PROBA, InputRejected, Predictor, SklearnPredictor

DATA = {"iris": load_iris, "wine": load_wine, "cancer": load_breast_cancer, "diabetes": load_diabetes}


def _split(name: str) -> tuple[Any, Any, Any, Any]:
    x, y = DATA[name](return_X_y=True)
    return train_test_split(x, y, test_size=0.3, random_state=0)  # type: ignore[no-any-return]


def _codes(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Three integer-coded categorical features and a class that depends on two of them."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, (rows, 3)).astype(np.float64)
    return x, ((x[:, 0] + x[:, 1]) % 3 == 0).astype(np.int64)


def _compiled(model: BaseEstimator) -> Predictor:
    return compile_predictor(SklearnPredictor(model), threads=1)


FAMILIES = [
    ("linear regression", LinearRegression(), "diabetes"),
    ("ridge", Ridge(alpha=0.5), "diabetes"),
    ("logistic, multinomial", LogisticRegression(max_iter=5000), "iris"),
    ("logistic, binary", LogisticRegression(max_iter=5000), "cancer"),
    ("SVM, RBF kernel", SVC(), "iris"),
    ("SVM, polynomial kernel", SVC(kernel="poly", degree=2), "cancer"),
    ("SVM regression", SVR(), "diabetes"),
    ("decision tree", DecisionTreeClassifier(random_state=0), "wine"),
    ("regression tree", DecisionTreeRegressor(random_state=0), "diabetes"),
    ("random forest, even tree count", RandomForestClassifier(n_estimators=50, random_state=0), "cancer"),
    ("random forest regression", RandomForestRegressor(n_estimators=50, random_state=0), "diabetes"),
    ("extra trees regression", ExtraTreesRegressor(n_estimators=50, random_state=0), "diabetes"),
    ("gradient boosting", GradientBoostingClassifier(random_state=0), "wine"),
    ("gradient boosting regression", GradientBoostingRegressor(random_state=0), "diabetes"),
    ("scaler + logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), "cancer"),
    ("min-max scaler + SVM", make_pipeline(MinMaxScaler(), SVC()), "wine"),
]


@pytest.mark.parametrize("model, data", [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_each_family_is_compiled_and_answers_like_scikit_learn_on_held_out_rows(
    model: BaseEstimator, data: str
) -> None:
    # Given a model fitted on part of a data set,
    x_train, x_test, y_train, _ = _split(data)
    model.fit(x_train, y_train)
    # when it is compiled,
    predictor = _compiled(model)
    # then a verified graph serves it, and on the rows it never saw
    assert predictor.predict_path != SKLEARN, predictor.predict_path_reason
    _assert_answers_like(model, predictor, x_test)


def test_a_pipeline_with_a_one_hot_encoder_is_compiled() -> None:
    # Given integer-coded categories one-hot encoded (unknown categories encoded as zeros) before a model,
    x, y = _codes(400, seed=1)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(x, y)
    predictor = _compiled(model)
    # then it is compiled and answers like scikit-learn on new rows, an unseen category among them.
    assert predictor.predict_path != SKLEARN, predictor.predict_path_reason
    held_out, _ = _codes(100, seed=2)
    held_out[0, 2] = 7.0
    _assert_answers_like(model, predictor, held_out)


def _assert_answers_like(model: BaseEstimator, predictor: Predictor, rows: np.ndarray[Any, Any]) -> None:
    got = predictor.predict(np.ascontiguousarray(rows), predictor.output_names, finite=True)
    if is_classifier(model):
        np.testing.assert_array_equal(got[PREDICT], model.predict(rows))
        assert got[PREDICT].dtype == model.predict(rows).dtype
    else:
        np.testing.assert_allclose(got[PREDICT], model.predict(rows), rtol=RTOL, atol=ATOL)
    if PREDICT_PROBA in got:
        np.testing.assert_allclose(got[PREDICT_PROBA], model.predict_proba(rows), rtol=RTOL, atol=ATOL)


UNSUPPORTED = [
    (
        "histogram gradient boosting",
        HistGradientBoostingClassifier(max_iter=20),
        "HistGradientBoostingClassifier",
    ),
    ("nearest neighbours", KNeighborsClassifier(), "KNeighborsClassifier"),
    (
        "encoder that refuses unknown categories",
        make_pipeline(OneHotEncoder(handle_unknown="error"), LogisticRegression()),
        "OneHotEncoder(handle_unknown='error')",
    ),
]


@pytest.mark.parametrize("model, named", [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED])
def test_an_unsupported_model_stays_with_scikit_learn_and_says_why(model: BaseEstimator, named: str) -> None:
    # Given a model outside the compiled families,
    x, y = _codes(200, seed=3)
    model.fit(x, y)
    # when compiling is attempted,
    predictor = _compiled(model)
    # then scikit-learn serves it, the reason names the part, and the answers are scikit-learn's.
    assert predictor.predict_path == SKLEARN
    assert named in predictor.predict_path_reason
    np.testing.assert_array_equal(predictor.predict(x, [PREDICT], finite=True)[PREDICT], model.predict(x))


def test_a_text_model_stays_with_scikit_learn() -> None:
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(["good day", "bad day"], [1, 0])
    predictor = _compiled(model)
    assert predictor.predict_path == SKLEARN
    assert "strings" in predictor.predict_path_reason


@pytest.mark.parametrize("model", [LinearSVC(), SGDClassifier(random_state=0)], ids=["linear SVM", "SGD"])
def test_a_model_that_float32_would_flip_is_caught_by_the_verification_and_stays_with_scikit_learn(
    model: BaseEstimator,
) -> None:
    # Given a linear classifier whose converter builds float32 graphs only: near its decision boundaries
    # float32 rounding picks another class than scikit-learn's float64,
    x_train, x_test, y_train, _ = _split("wine")
    model.fit(x_train, y_train)
    # when it is compiled,
    predictor = _compiled(model)
    # then the verification refused the float32 graph for a class mismatch, scikit-learn serves,
    assert predictor.predict_path == SKLEARN
    assert "onnx-float32: predict differs" in predictor.predict_path_reason
    # and answers are scikit-learn's.
    got = predictor.predict(np.ascontiguousarray(x_test), [PREDICT], finite=True)[PREDICT]
    np.testing.assert_array_equal(got, model.predict(x_test))


def test_a_forest_behind_a_scaler_is_refused_when_the_graphs_scaling_moves_rows_across_a_split() -> None:
    # Given a forest behind a scaler: scikit-learn scales in float64 and rounds the result to float32 for
    # the trees, the graph scales in its own precision, so a row close to a split can change side;
    x_train, x_test, y_train, _ = _split("iris")
    model = make_pipeline(StandardScaler(), RandomForestClassifier(30, random_state=0)).fit(x_train, y_train)
    # when it is compiled,
    predictor = _compiled(model)
    # then rows placed at the split thresholds (mapped back through the scaler) show it, and
    # scikit-learn serves.
    assert predictor.predict_path == SKLEARN
    assert "onnx-float32: predict differs" in predictor.predict_path_reason
    got = predictor.predict(np.ascontiguousarray(x_test), [PREDICT_PROBA], finite=True)[PREDICT_PROBA]
    np.testing.assert_array_equal(got, model.predict_proba(x_test))


def near_tie_model() -> GradientBoostingClassifier:
    """A boosted model whose score for every row is +1e-9: float64 says class 1, float32 arithmetic
    rounds the score to 0 and says class 0. Its converter builds float32 graphs only."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    model = GradientBoostingClassifier(n_estimators=1, learning_rate=1.0, max_depth=1)
    model.fit(x, (x[:, 0] > 0.3).astype(np.int64))
    prior = float(model._raw_predict_init(x[:1])[0, 0])
    model.estimators_[0, 0].tree_.value[1:, 0, 0] = -prior + 1e-9
    return model


def test_rows_at_a_near_tie_of_probabilities_are_answered_by_scikit_learn() -> None:
    # Given a model whose class flips in float32 because its two probabilities are all but equal,
    model = near_tie_model()
    rows = np.random.default_rng(1).normal(size=(20, 3))
    assert set(model.predict(rows).tolist()) == {1}
    # when it is compiled,
    predictor = _compiled(model)
    # then the graph serves, but every row of it is a near tie, so the answers are scikit-learn's.
    assert predictor.predict_path == "onnx-float32", predictor.predict_path_reason
    got = predictor.predict(rows, [PREDICT, PREDICT_PROBA], finite=True)
    np.testing.assert_array_equal(got[PREDICT], model.predict(rows))
    np.testing.assert_array_equal(got[PREDICT_PROBA], model.predict_proba(rows))


def test_rows_the_model_refuses_are_refused_as_scikit_learn_refuses_them() -> None:
    # Given a compiled model,
    x_train, _, y_train, _ = _split("iris")
    predictor = _compiled(LogisticRegression(max_iter=5000).fit(x_train, y_train))
    assert predictor.predict_path != SKLEARN
    # when a row holds NaN, or has the wrong number of features,
    # then scikit-learn's refusal comes back, not a guess from the graph.
    with pytest.raises(InputRejected, match="NaN"):
        predictor.predict(np.array([[np.nan, 1.0, 1.0, 1.0]]), [PREDICT], finite=False)
    with pytest.raises(InputRejected, match="features"):
        predictor.predict(np.ones((1, 3)), [PREDICT], finite=True)
