"""The loaded model behind one small interface: its tensors' metadata and ``predict(x, outputs)``.

Two kinds sit behind it: a scikit-learn estimator (from skops or joblib) and an ONNX graph run by
onnxruntime. Everything above this module sees only ``Predictor``.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelship_server.tensors import datatype_of

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as V2 metadata shows it; -1 marks a dimension of any size (the batch, at least)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class InputRejected(Exception):
    """The model refused this input (wrong values or shape for it): a client error, not a server fault."""


class Predictor(abc.ABC):
    platform: str
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    # The dtype numeric inputs are converted to before they are batched; None: strings (object arrays).
    input_dtype: np.dtype[Any] | None
    # Features per row when the model knows; None when it takes any number (or one string per row).
    n_features: int | None
    # What answers predict calls (sklearn, onnx, or a verified compiled graph such as onnx-float64), and
    # why: reported in the model metadata and /metrics so a slow or fallen-back model can be told apart.
    predict_path: str = "sklearn"
    predict_path_reason: str = ""

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    @abc.abstractmethod
    def predict(
        self, x: np.ndarray[Any, Any], outputs: Collection[str], *, finite: bool
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run the model once on rows ``x``; one array per requested output, rows first.

        ``finite`` says the caller checked that ``x`` holds no NaN or infinity, so the model's own check
        can be skipped. Raises InputRejected when the model refuses the input.
        """


class SklearnPredictor(Predictor):
    platform = "sklearn"

    def __init__(self, model: Any) -> None:
        self.model = model
        takes_strings = _takes_strings(model)
        n_features = getattr(model, "n_features_in_", None)
        self.n_features = int(n_features) if isinstance(n_features, int | np.integer) else None
        if takes_strings:
            self.input_dtype = None
            self.input = TensorSpec("input-0", "BYTES", (-1,))
        else:
            self.input_dtype = np.dtype(np.float64)
            self.input = TensorSpec("input-0", "FP64", (-1, self.n_features or -1))
        classes = getattr(model, "classes_", None)
        outputs = []
        if isinstance(classes, np.ndarray) and classes.ndim == 1:
            outputs.append(TensorSpec(PREDICT, datatype_of(classes.dtype), (-1,)))
            if _has_method(model, "predict_proba"):
                outputs.append(TensorSpec(PREDICT_PROBA, "FP64", (-1, len(classes))))
        else:
            outputs.append(TensorSpec(PREDICT, "FP64", (-1,)))
        self.outputs = tuple(outputs)
        import sklearn

        self._assume_finite = sklearn.config_context
        self._methods = {PREDICT: model.predict}
        if _has_method(model, "predict_proba"):
            self._methods[PREDICT_PROBA] = model.predict_proba

    def predict(
        self, x: np.ndarray[Any, Any], outputs: Collection[str], *, finite: bool
    ) -> dict[str, np.ndarray[Any, Any]]:
        try:
            if finite:
                # scikit-learn's own finiteness check costs a quarter of a one-row predict; the caller
                # already made it, so it is skipped. Non-finite input keeps the check, so an estimator
                # that accepts NaN still does and one that refuses it still raises.
                with self._assume_finite(assume_finite=True):
                    return {name: np.asarray(self._methods[name](x)) for name in outputs}
            return {name: np.asarray(self._methods[name](x)) for name in outputs}
        except (ValueError, TypeError, IndexError, KeyError) as error:
            raise InputRejected(_one_line(error)) from None


def _has_method(model: Any, name: str) -> bool:
    # hasattr runs scikit-learn's available_if checks (SVC without probability=True has no predict_proba).
    try:
        return callable(getattr(model, name))
    except AttributeError:
        return False


def _takes_strings(model: Any) -> bool:
    """True for a text model: a vectorizer alone or first in a pipeline takes one string per row."""
    first = model
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        first = steps[0][1]
    return hasattr(first, "build_analyzer")


_ONNX_TYPES = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(string)": ("BYTES", np.object_),
}


class OnnxPredictor(Predictor):
    """An ONNX graph. ``predict`` is its first output; ``predict_proba`` its probabilities, if any.

    skl2onnx writes classifier probabilities either as a tensor or, by default, as a list of
    {class: probability} maps (ZipMap); both come out as a [rows, classes] array.
    """

    platform = "onnx"
    predict_path = "onnx"
    predict_path_reason = "the model file is an ONNX graph"

    def __init__(self, session: Any) -> None:
        self.session = session
        inputs = session.get_inputs()
        if len(inputs) != 1:
            from modelship_server.errors import StartupError

            raise StartupError(f"the ONNX model has {len(inputs)} inputs; one input tensor is supported")
        self._input_name = inputs[0].name
        datatype, dtype = _ONNX_TYPES.get(inputs[0].type, ("FP32", np.float32))
        shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in inputs[0].shape or [-1])
        self.input = TensorSpec("input-0", datatype, shape)
        self.input_dtype = None if dtype is np.object_ else np.dtype(dtype)
        self.n_features = shape[1] if len(shape) == 2 and shape[1] >= 0 else None
        self._fixed_shape = shape
        native = session.get_outputs()
        self._native: dict[str, str] = {PREDICT: native[0].name}
        specs = [TensorSpec(PREDICT, _ONNX_TYPES.get(native[0].type, ("FP32", None))[0], (-1,))]
        probabilities = next((o for o in native[1:] if "prob" in o.name.lower()), None)
        if probabilities is not None:
            self._native[PREDICT_PROBA] = probabilities.name
            specs.append(TensorSpec(PREDICT_PROBA, "FP32", (-1, -1)))
        self.outputs = tuple(specs)

    def predict(
        self, x: np.ndarray[Any, Any], outputs: Collection[str], *, finite: bool
    ) -> dict[str, np.ndarray[Any, Any]]:
        if x.ndim != len(self._fixed_shape) or any(
            want not in (-1, got) for want, got in zip(self._fixed_shape, x.shape, strict=False)
        ):
            raise InputRejected(f"the model takes shape {list(self._fixed_shape)}, got {list(x.shape)}")
        names = list(outputs)
        try:
            results = self.session.run([self._native[name] for name in names], {self._input_name: x})
        except Exception as error:
            # onnxruntime raises its own InvalidArgument/Fail types for inputs it cannot take.
            if type(error).__name__ in ("InvalidArgument", "Fail", "InvalidGraph"):
                raise InputRejected(_one_line(error)) from None
            raise
        return {name: _as_array(result) for name, result in zip(names, results, strict=True)}


def _as_array(result: Any) -> np.ndarray[Any, Any]:
    if isinstance(result, list) and result and isinstance(result[0], dict):
        classes = sorted(result[0])
        return np.array([[row[c] for c in classes] for row in result], dtype=np.float32)
    return np.asarray(result)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
