"""Deserializing the verified model file, refusing what could run code unless the operator allowed it.

- skops: the file lists every type it contains before anything is built. Types from scikit-learn and
  numpy's own array and scalar types are trusted; any other type must be named with --trusted-type.
- ONNX: a graph, not code; onnxruntime runs it.
- joblib/pickle: loading runs arbitrary code, so it needs --allow-unsafe-pickle.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelship_server.artifact import LocalArtifact
from modelship_server.errors import StartupError
from modelship_server.predictor import OnnxPredictor, Predictor, SklearnPredictor

log = logging.getLogger(__name__)


def load_predictor(
    artifact: LocalArtifact,
    *,
    trusted_types: Iterable[str] = (),
    allow_unsafe_pickle: bool = False,
    threads: int = 1,
    compile_model: bool = True,
) -> Predictor:
    """The model in ``artifact`` ready to predict; StartupError (one line) when it cannot or may not be.

    With ``compile_model`` a scikit-learn model is served by a compiled graph once that graph has been
    verified against it (compiled.py); an ONNX file is served as it is.
    """
    path = artifact.path
    try:
        if artifact.format == "onnx":
            return OnnxPredictor(_onnx_session(path, threads))
        if artifact.format == "joblib":
            model = _load_pickle(path, allow_unsafe_pickle)
        else:
            model = _load_skops(path, tuple(trusted_types))
    except StartupError:
        raise
    except Exception as error:
        raise StartupError(
            f"cannot load {artifact.format} model {path.name!r}: {type(error).__name__}: {_one_line(error)}"
        ) from None
    if not callable(getattr(model, "predict", None)):
        raise StartupError(f"the object in {path.name!r} ({type(model).__name__}) has no predict method")
    predictor = SklearnPredictor(model)
    if not compile_model:
        predictor.predict_path_reason = "compiling is switched off (--compile off)"
        return predictor
    from modelship_server.compiled import SKLEARN, compile_predictor

    served = compile_predictor(predictor, threads=threads)
    fields = {"predict_path": served.predict_path, "reason": served.predict_path_reason}
    if served.predict_path == SKLEARN:
        log.warning("compiled predict path not used; scikit-learn serves", extra=fields)
    else:
        log.info("compiled predict path verified", extra=fields)
    return served


def _load_skops(path: Path, trusted_types: tuple[str, ...]) -> Any:
    import skops.io

    listed = skops.io.get_untrusted_types(file=path)
    refused = sorted(t for t in listed if t not in trusted_types and not is_library_type(t))
    if refused:
        raise StartupError(
            f"refusing to load {path.name!r}: it contains types that are not trusted: "
            f"{', '.join(refused)}; pass --trusted-type NAME for each one you trust"
        )
    return skops.io.load(path, trusted=listed)


def is_library_type(name: str) -> bool:
    """A class defined in scikit-learn, or one of numpy's scalar, dtype or array types.

    Only classes: a skops file can also reference functions, and a function from these libraries can do
    harm when the model later calls it (numpy has one that executes a string). Numpy classes are limited
    to data types because some (memmap) touch files when constructed.
    """
    module_name, _, attribute = name.rpartition(".")
    root = module_name.split(".", 1)[0]
    if root not in ("sklearn", "numpy") or not attribute:
        return False
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except Exception:  # a name that does not resolve cleanly is simply not trusted
        return False
    if not isinstance(found, type):
        return False
    if root == "sklearn":
        return found.__module__.split(".", 1)[0] == "sklearn"
    import numpy as np

    return issubclass(found, np.generic | np.dtype) or found is np.ndarray


def _load_pickle(path: Path, allow_unsafe_pickle: bool) -> Any:
    if not allow_unsafe_pickle:
        raise StartupError(
            f"refusing to load {path.name!r}: joblib/pickle files run code when loaded; "
            "pass --allow-unsafe-pickle only if you trust this file, or save the model "
            "with skops"
        )
    import joblib

    log.warning("loading a pickle: this runs any code the file contains", extra={"path": str(path)})
    return joblib.load(path)


def _onnx_session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or "no details"
