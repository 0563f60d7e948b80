"""The compiled predict path: a scikit-learn model converted to an ONNX graph (skl2onnx) and run by
onnxruntime, which answers one row in microseconds where scikit-learn's ``predict`` takes hundreds.

A converted graph is trusted only after it has given scikit-learn's answers on a verification set:
identical classes, and probabilities or regression values within ``RTOL``/``ATOL``, compared with
scikit-learn computing in float64. The graph is tried in float64 first, then in float32 (some converters
only build float32 graphs, and skl2onnx's float64 forests sum probabilities wrongly). Anything else
(an estimator outside the families below, a converter error, a mismatch) leaves scikit-learn serving,
with the reason in one log line, the model metadata and the ``model_predict_path_info`` metric.

Only families whose scikit-learn ``predict`` takes every finite float row are compiled: for them the graph
can answer whatever scikit-learn would answer, and scikit-learn still handles what it would refuse
(non-finite values, a wrong number of features), so a client sees the same errors either way.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelship_server.predictor import PREDICT, PREDICT_PROBA, Predictor, SklearnPredictor

log = logging.getLogger(__name__)

# Probabilities and regression outputs of the graph must be this close to scikit-learn's (float64).
RTOL = 1e-5
ATOL = 1e-6
SKLEARN = "sklearn"

# Estimators whose predict accepts any finite float input, by module and class name.
_SUPPORTED = {
    "sklearn.linear_model": {
        "LinearRegression",
        "Ridge",
        "Lasso",
        "ElasticNet",
        "LogisticRegression",
        "RidgeClassifier",
        "SGDClassifier",
        "SGDRegressor",
    },
    "sklearn.svm": {"SVC", "SVR", "LinearSVC", "LinearSVR", "NuSVC", "NuSVR"},
    "sklearn.tree": {"DecisionTreeClassifier", "DecisionTreeRegressor"},
    "sklearn.ensemble": {
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
    },
    "sklearn.preprocessing": {
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "RobustScaler",
        "OneHotEncoder",
    },
    "sklearn.pipeline": {"Pipeline"},
}
# Classifiers whose predict is the class of the highest probability. Rows whose two highest probabilities
# are closer than _NEAR_TIE are answered by scikit-learn: there a float32 sum can rank the classes
# otherwise (a forest of 100 trees splitting 50/50 gives 0.5/0.5 to scikit-learn, 0.49999994/0.50000006
# to the graph), and such rows are rare enough that the extra call costs nothing measurable.
_ARGMAX_CLASSIFIERS = {
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
    "LogisticRegression",
}
_NEAR_TIE = 1e-4
# Rows synthesized for verification, beyond those placed at split thresholds and decision boundaries.
_GENERIC_ROWS = 512
_MAX_SPLIT_ROWS = 4096
_MAX_BOUNDARY_ROWS = 1024


Outputs = dict[str, np.ndarray[Any, Any]]


@dataclass(frozen=True)
class Compilation:
    """What serves (``predictor``), under which name (``path``), and why."""

    predictor: Predictor
    path: str
    reason: str


class CompiledPredictor(Predictor):
    """The verified graph for finite rows of the right width; scikit-learn for everything else."""

    def __init__(self, fallback: SklearnPredictor, run: Callable[[np.ndarray[Any, Any]], Outputs]) -> None:
        self.fallback = fallback
        self.platform = fallback.platform
        self.input = fallback.input
        self.outputs = fallback.outputs
        self.input_dtype = fallback.input_dtype
        self.n_features = fallback.n_features
        self._run = run

    def predict(
        self, x: np.ndarray[Any, Any], outputs: Collection[str], *, finite: bool
    ) -> dict[str, np.ndarray[Any, Any]]:
        if not finite or x.ndim != 2 or x.shape[1] != self.n_features or x.dtype != np.float64:
            # scikit-learn decides what such input means (an error, or NaN handling): the same answer
            # as without the compiled path.
            return self.fallback.predict(x, outputs, finite=finite)
        results = self._run(x)
        return {name: results[name] for name in outputs}


def compile_predictor(base: SklearnPredictor, *, threads: int) -> Predictor:
    """The fastest verified way to serve ``base``'s model, else ``base``; either carries its
    ``predict_path`` and the reason for it.

    Never raises: a failure to compile is a reason to keep scikit-learn, not to refuse to start.
    """
    try:
        chosen = _compile(base, threads)
    except Exception as error:  # a converter bug must not stop the server; scikit-learn still serves
        chosen = Compilation(base, SKLEARN, f"compiling failed: {type(error).__name__}: {_one_line(error)}")
    chosen.predictor.predict_path = chosen.path
    chosen.predictor.predict_path_reason = chosen.reason
    return chosen.predictor


def _compile(base: SklearnPredictor, threads: int) -> Compilation:
    model = base.model
    if base.input_dtype is None or base.n_features is None:
        return Compilation(base, SKLEARN, "the model takes strings or an unknown number of features")
    unsupported = _unsupported_parts(model)
    if unsupported:
        return Compilation(base, SKLEARN, f"no verified conversion for {', '.join(unsupported)}")
    rows = verification_rows(model, base.n_features)
    expected = _reference(base, rows)
    failures = []
    for dtype in (np.float64, np.float32):
        name = f"onnx-{np.dtype(dtype).name}"
        try:
            run = _onnx_runner(base, dtype, threads)
            mismatch = _mismatch(expected, run(rows), classifier=hasattr(model, "classes_"))
        except Exception as error:
            failures.append(f"{name}: {type(error).__name__}: {_one_line(error)[:300]}")
            continue
        if mismatch is None:
            return Compilation(
                CompiledPredictor(base, run), name, f"verified on {len(rows)} rows against scikit-learn"
            )
        failures.append(f"{name}: {mismatch}")
    return Compilation(base, SKLEARN, "; ".join(failures))


def _unsupported_parts(model: Any) -> list[str]:
    found = []
    for part in _parts(model):
        cls = type(part)
        module = cls.__module__.split(".")[:2]
        if cls.__name__ not in _SUPPORTED.get(".".join(module), ()):
            found.append(cls.__name__)
        elif cls.__name__ == "OneHotEncoder" and part.handle_unknown == "error":
            # scikit-learn refuses an unknown category; the graph would encode it as all zeros.
            found.append("OneHotEncoder(handle_unknown='error')")
    return found


def _parts(model: Any) -> Iterator[Any]:
    yield model
    for _, step in getattr(model, "steps", None) or ():
        if step not in (None, "passthrough"):
            yield from _parts(step)


def _reference(base: SklearnPredictor, rows: np.ndarray[Any, Any]) -> Outputs:
    return base.predict(rows, base.output_names, finite=True)


def _onnx_runner(
    base: SklearnPredictor, dtype: type, threads: int
) -> Callable[[np.ndarray[Any, Any]], Outputs]:
    import onnxruntime
    from skl2onnx import to_onnx

    model = base.model
    # Probabilities as a plain tensor, not skl2onnx's default list of maps (only models with
    # predict_proba take the option).
    has_proba = PREDICT_PROBA in base.output_names
    with warnings.catch_warnings():
        # skl2onnx warns about opset choices; the verification below is what decides.
        warnings.simplefilter("ignore")
        graph = to_onnx(
            model,
            np.zeros((1, base.n_features or 1), dtype=dtype),
            options={"zipmap": False} if has_proba else None,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    native = [o.name for o in session.get_outputs()]
    classes = getattr(model, "classes_", None)
    label_dtype = classes.dtype if isinstance(classes, np.ndarray) else np.dtype(np.float64)
    wanted = [PREDICT] + ([PREDICT_PROBA] if has_proba else [])
    names = native[: len(wanted)]
    run_session = session.run
    cast = dtype is not np.float64
    guard_ties = has_proba and type(_final_step(model)).__name__ in _ARGMAX_CLASSIFIERS

    def run(x: np.ndarray[Any, Any]) -> Outputs:
        results = run_session(names, {input_name: x.astype(dtype) if cast else x})
        predicted = results[0]
        # scikit-learn answers (rows,) for one target; the graph (rows, 1).
        if predicted.ndim == 2 and predicted.shape[1] == 1:
            predicted = predicted[:, 0]
        out = {PREDICT: predicted.astype(label_dtype)}
        if has_proba:
            out[PREDICT_PROBA] = results[1].astype(np.float64)
            if guard_ties:
                _answer_near_ties(base, x, out)
        return out

    return run


def _answer_near_ties(base: SklearnPredictor, x: np.ndarray[Any, Any], out: Outputs) -> None:
    proba = out[PREDICT_PROBA]
    if proba.shape[1] < 2:
        return
    top = np.partition(proba, -2, axis=1)
    near = top[:, -1] - top[:, -2] < _NEAR_TIE
    if near.any():
        exact = base.predict(x[near], (PREDICT, PREDICT_PROBA), finite=True)
        out[PREDICT][near] = exact[PREDICT]
        out[PREDICT_PROBA][near] = exact[PREDICT_PROBA]


def _final_step(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    while steps:
        model = steps[-1][1]
        steps = getattr(model, "steps", None)
    return model


def _mismatch(expected: Outputs, got: Outputs, *, classifier: bool) -> str | None:
    """None when ``got`` gives scikit-learn's answers; else what differs, for the log line."""
    for name, want in expected.items():
        have = got.get(name)
        if have is None or have.shape != want.shape:
            return f"{name} has shape {None if have is None else have.shape}, expected {want.shape}"
        # Classes (whatever their type) must be identical; numbers within the tolerance.
        exact = name == PREDICT and classifier
        differs = want != have if exact else ~np.isclose(have, want, rtol=RTOL, atol=ATOL)
        if differs.any():
            row = int(np.argwhere(differs)[0][0])
            return (
                f"{name} differs on {int(differs.reshape(len(want), -1).any(axis=1).sum())} of "
                f"{len(want)} rows (first: row {row}, {want[row].tolist()} vs {have[row].tolist()})"
            )
    return None


def verification_rows(model: Any, n_features: int) -> np.ndarray[Any, Any]:
    """Rows that cover the model's input space, in float64, deterministic for a given model.

    Generic rows come from the statistics the first step carries (a scaler's mean and scale, an encoder's
    categories, the range of a tree's split thresholds), else from several scales around zero. Then the
    places where a small numeric difference changes an answer: each split threshold of the trees that see
    the input, and the float32 values on either side of it; and points just off a linear classifier's
    decision boundaries, where float32 rounding flips a class.
    """
    rng = np.random.default_rng(0)
    first = _first_step(model)
    generic = _generic_rows(first, n_features, rng)
    blocks = [generic]
    splits = list(_splits(first))
    if splits:
        blocks.append(_split_rows(splits, generic, rng))
    else:
        blocks.extend(_scaled_split_rows(model, generic, rng))
    boundary = _boundary_rows(model, generic, rng)
    if boundary is not None:
        blocks.append(boundary)
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float64)


def _first_step(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    while steps:
        model = steps[0][1]
        steps = getattr(model, "steps", None)
    return model


def _generic_rows(first: Any, n: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    count = _GENERIC_ROWS
    categories = getattr(first, "categories_", None)
    if isinstance(categories, list) and len(categories) == n:
        return np.column_stack([rng.choice(np.asarray(c, dtype=np.float64), count) for c in categories])
    mean, scale = getattr(first, "mean_", None), getattr(first, "scale_", None)
    if isinstance(mean, np.ndarray) and isinstance(scale, np.ndarray) and mean.shape == (n,):
        spread = scale * rng.standard_normal((count, n)) * rng.choice([0.5, 1.0, 3.0], (count, 1))
        return np.asarray(mean + spread, dtype=np.float64)
    low, high = getattr(first, "data_min_", None), getattr(first, "data_max_", None)
    if isinstance(low, np.ndarray) and isinstance(high, np.ndarray) and low.shape == (n,):
        margin = 0.1 * (high - low)
        return np.asarray(rng.uniform(low - margin, high + margin, (count, n)), dtype=np.float64)
    splits = list(_splits(first))
    if splits:
        # Each feature spread over the thresholds the trees split it at (features never split on: 0 +- 1).
        low_high = np.tile([-1.0, 1.0], (n, 1))
        by_feature: dict[int, list[float]] = {}
        for feature, threshold in splits:
            by_feature.setdefault(feature, []).append(threshold)
        for feature, values in by_feature.items():
            span = max(values) - min(values)
            low_high[feature] = (min(values) - 0.1 * span - 1e-3, max(values) + 0.1 * span + 1e-3)
        return rng.uniform(low_high[:, 0], low_high[:, 1], (count, n))
    # Nothing says where the inputs live: several scales, so neither small nor large values go untested.
    scales = rng.choice([0.1, 1.0, 10.0, 1000.0], (count, 1))
    return np.asarray(rng.standard_normal((count, n)) * scales, dtype=np.float64)


def _trees(estimator: Any) -> Iterator[Any]:
    tree = getattr(estimator, "tree_", None)
    if tree is not None:
        yield tree
    members = getattr(estimator, "estimators_", None)
    if members is not None:
        for member in np.asarray(members, dtype=object).ravel():
            yield from _trees(member)


def _splits(estimator: Any) -> Iterator[tuple[int, float]]:
    for tree in _trees(estimator):
        inner = tree.feature >= 0
        yield from zip(tree.feature[inner].tolist(), tree.threshold[inner].tolist(), strict=True)


def _split_rows(
    splits: list[tuple[int, float]], generic: np.ndarray[Any, Any], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    """Rows with one feature at a split threshold, or at the float32 values just below and above it."""
    unique = sorted(set(splits))
    per_split = 4
    if len(unique) * per_split > _MAX_SPLIT_ROWS:
        picked = rng.choice(len(unique), _MAX_SPLIT_ROWS // per_split, replace=False)
        unique = [unique[i] for i in sorted(picked)]
    rows = generic[rng.integers(0, len(generic), len(unique) * per_split)].copy()
    for index, (feature, threshold) in enumerate(unique):
        as32 = np.float32(threshold)
        values = (
            threshold,
            float(as32),
            float(np.nextafter(as32, np.float32(-np.inf))),
            float(np.nextafter(as32, np.float32(np.inf))),
        )
        rows[index * per_split : (index + 1) * per_split, feature] = values
    return rows


_SCALERS = {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler"}


def _scaled_split_rows(
    model: Any, generic: np.ndarray[Any, Any], rng: np.random.Generator
) -> list[np.ndarray[Any, Any]]:
    """Split rows for trees behind scalers, mapped back to the input: the graph scales in its own
    precision, which can move a row to the other side of a threshold."""
    steps = [s for _, s in getattr(model, "steps", None) or [] if s not in (None, "passthrough")]
    if len(steps) < 2 or any(type(s).__name__ not in _SCALERS for s in steps[:-1]):
        return []
    splits = list(_splits(steps[-1]))
    if not splits:
        return []
    scaled = generic
    for step in steps[:-1]:
        scaled = step.transform(scaled)
    rows = _split_rows(splits, np.asarray(scaled, dtype=np.float64), rng)
    for step in reversed(steps[:-1]):
        rows = step.inverse_transform(rows)
    return [np.asarray(rows, dtype=np.float64)]


def _boundary_rows(
    model: Any, generic: np.ndarray[Any, Any], rng: np.random.Generator
) -> np.ndarray[Any, Any] | None:
    """Points just off the decision boundaries of a linear classifier that sees the raw input (or
    standardized input): where float32 arithmetic is most likely to pick another class than float64."""
    steps = [s for _, s in getattr(model, "steps", None) or [] if s not in (None, "passthrough")] or [model]
    final = steps[-1]
    coef, intercept = getattr(final, "coef_", None), getattr(final, "intercept_", None)
    if not isinstance(coef, np.ndarray) or coef.ndim != 2 or not hasattr(final, "classes_"):
        return None
    mean, scale = np.zeros(coef.shape[1]), np.ones(coef.shape[1])
    if len(steps) == 2 and type(steps[0]).__name__ == "StandardScaler":
        mean = np.asarray(steps[0].mean_ if steps[0].with_mean else mean, dtype=np.float64)
        scale = np.asarray(steps[0].scale_ if steps[0].with_std else scale, dtype=np.float64)
    elif len(steps) != 1:
        return None
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (coef.shape[0],))
    # Binary models have one hyperplane; one-vs-rest and multinomial ones a difference per class pair.
    if coef.shape[0] == 1:
        planes = [(coef[0], intercept[0])]
    else:
        planes = [
            (coef[i] - coef[j], intercept[i] - intercept[j])
            for i in range(coef.shape[0])
            for j in range(i + 1, coef.shape[0])
        ]
    # Offsets relative to the size of the terms summed: far above float64's rounding (n * 1e-16), the
    # smaller ones below float32's (1e-7). A point exactly on a boundary has no right answer, so none is.
    offsets = np.array([-1e-3, -1e-6, -1e-8, -1e-10, 1e-10, 1e-8, 1e-6, 1e-3])
    per_plane = max(1, _MAX_BOUNDARY_ROWS // (len(planes) * len(offsets)))
    blocks = []
    for w, b in planes:
        norm2 = float(w @ w)
        if norm2 == 0:
            continue
        z = (generic[rng.integers(0, len(generic), per_plane)] - mean) / scale
        on_plane = z - np.outer((z @ w + b) / norm2, w)
        magnitude = np.abs(on_plane) @ np.abs(w) + abs(b)
        for offset in offsets:
            blocks.append(mean + scale * (on_plane + np.outer(offset * magnitude / norm2, w)))
    return np.concatenate(blocks) if blocks else None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
