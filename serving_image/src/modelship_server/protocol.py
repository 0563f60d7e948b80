"""Request bodies to model input and model output to response bodies, for V2 and V1.

Pure functions of bytes and numpy arrays: no I/O, no server state, so the protocol is tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelship_server.errors import BadRequest
from modelship_server.predictor import PREDICT, Predictor
from modelship_server.tensors import (
    DTYPES,
    check_shape,
    datatype_of,
    from_binary,
    from_json,
    json_data,
    to_binary,
)

_DATATYPE_LIST = ", ".join(DTYPES)
_DEFAULT_OUTPUTS = (PREDICT,)
_NO_BINARY: frozenset[str] = frozenset()


@dataclass(slots=True)
class InferCall:
    """One V2 infer request, decoded and checked: rows ready for the model and what to answer with."""

    x: np.ndarray[Any, Any]
    outputs: tuple[str, ...] = _DEFAULT_OUTPUTS
    binary_outputs: frozenset[str] = _NO_BINARY
    request_id: str | None = None


def _load_json(body: bytes | memoryview) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None


def parse_v2_infer(body: bytes, predictor: Predictor, header_length: int | None = None) -> InferCall:
    """Decode an infer request; ``header_length`` is the Inference-Header-Content-Length (binary data)."""
    if header_length is not None and not 0 <= header_length <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length {header_length} does not fit the {len(body)}-byte body"
        )
    json_part = body if header_length is None else memoryview(body)[:header_length]
    doc = _load_json(json_part)
    if type(doc) is not dict:
        raise BadRequest("the request body must be a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if type(inputs) is not list or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    if len(inputs) != 1:
        raise BadRequest(f"the model takes one input tensor, the request has {len(inputs)}")
    tensor = inputs[0]
    if type(tensor) is not dict:
        raise BadRequest("each input must be a JSON object with name, shape, datatype and data")
    name = tensor.get("name")
    if type(name) is not str:
        raise BadRequest("input is missing its 'name' (a string)")
    datatype = tensor.get("datatype")
    if datatype not in DTYPES:
        raise BadRequest(f"input {name!r}: datatype {datatype!r} is not one of {_DATATYPE_LIST}")
    shape = check_shape(name, tensor.get("shape"))
    parameters = tensor.get("parameters")
    binary_size = parameters.get("binary_data_size") if type(parameters) is dict else None
    if binary_size is not None:
        if header_length is None:
            raise BadRequest(
                f"input {name!r} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if type(binary_size) is not int or binary_size != len(body) - header_length:
            raise BadRequest(
                f"input {name!r}: binary_data_size {binary_size!r} does not match the "
                f"{len(body) - header_length} bytes after the JSON header"
            )
        array = from_binary(name, datatype, shape, memoryview(body)[header_length:])
    elif "data" in tensor:
        array = from_json(name, datatype, shape, tensor["data"])
    else:
        raise BadRequest(f"input {name!r} has no 'data'")
    call = InferCall(x=to_model_input(name, array, predictor))
    _parse_outputs(doc, predictor, call)
    request_id = doc.get("id")
    if request_id is not None:
        if type(request_id) is not str:
            raise BadRequest("'id' must be a string")
        call.request_id = request_id
    return call


def _parse_outputs(doc: dict[str, Any], predictor: Predictor, call: InferCall) -> None:
    parameters = doc.get("parameters")
    all_binary = type(parameters) is dict and parameters.get("binary_data_output") is True
    requested = doc.get("outputs")
    if requested is None or requested == []:
        call.binary_outputs = frozenset(_DEFAULT_OUTPUTS) if all_binary else _NO_BINARY
        return
    if type(requested) is not list:
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects")
    names: list[str] = []
    binary: set[str] = set()
    for output in requested:
        name = output.get("name") if type(output) is dict else None
        if type(name) is not str:
            raise BadRequest("each requested output must be an object with a 'name'")
        if name not in predictor.output_names:
            raise BadRequest(
                f"unknown output {name!r}; the model has outputs {', '.join(predictor.output_names)}"
            )
        if name not in names:
            names.append(name)
        output_parameters = output.get("parameters")
        wants_binary = output_parameters.get("binary_data") if type(output_parameters) is dict else None
        if wants_binary is True or (wants_binary is None and all_binary):
            binary.add(name)
    call.outputs = tuple(names)
    call.binary_outputs = frozenset(binary)


def to_model_input(name: str, array: np.ndarray[Any, Any], predictor: Predictor) -> np.ndarray[Any, Any]:
    """Rows in the dtype and layout the model takes, or BadRequest saying what it takes instead."""
    expected = predictor.input.shape
    if predictor.input_dtype is None:
        if array.dtype != object:
            raise BadRequest(
                f"input {name!r}: the model takes strings (BYTES), got {datatype_of(array.dtype)}"
            )
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
    else:
        if array.dtype == object:
            raise BadRequest(f"input {name!r}: the model takes numbers, got BYTES")
        if array.ndim == 1 and len(expected) == 2 and predictor.n_features == 1:
            array = array.reshape(-1, 1)
    if array.ndim != len(expected) or any(
        want not in (-1, got) for want, got in zip(expected, array.shape, strict=True)
    ):
        shown = ["N" if i == 0 else ("?" if d == -1 else d) for i, d in enumerate(expected)]
        raise BadRequest(
            f"input {name!r}: the model takes shape [{', '.join(map(str, shown))}], got {list(array.shape)}"
        )
    if array.shape[0] == 0:
        raise BadRequest(f"input {name!r} has no rows")
    if predictor.input_dtype is not None and array.dtype != predictor.input_dtype:
        array = array.astype(predictor.input_dtype)
    return array


def encode_v2_infer(
    call: InferCall, results: dict[str, np.ndarray[Any, Any]], model_name: str, model_version: str
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when some outputs are binary."""
    outputs = []
    binary_parts = []
    for name in call.outputs:
        array = results[name]
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if name in call.binary_outputs:
            raw = to_binary(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            entry["data"] = json_data(array)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if call.request_id is not None:
        doc["id"] = call.request_id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary_parts:
        return header, None
    return header + b"".join(binary_parts), len(header)


def parse_v1_predict(body: bytes, predictor: Predictor) -> np.ndarray[Any, Any]:
    """Rows from a V1 body: {"instances": [...]} (or {"inputs": [...]}), one instance per row."""
    doc = _load_json(body)
    if type(doc) is not dict:
        raise BadRequest("the request body must be a JSON object with 'instances'")
    instances = doc.get("instances", doc.get("inputs"))
    if type(instances) is not list or not instances:
        raise BadRequest("'instances' must be a non-empty list of rows")
    try:
        array = np.asarray(instances)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise BadRequest("'instances' must be rows of equal length") from None
    kind = array.dtype.kind
    if kind in "biuf":
        array = array.astype(np.float64)
    elif kind == "U" and predictor.input_dtype is None:
        array = array.astype(object)
    elif kind == "U":
        raise BadRequest("'instances' must hold numbers: this model takes numeric features")
    else:
        raise BadRequest("'instances' must be rows of numbers, all of the same length")
    return to_model_input("instances", array, predictor)


def encode_v1_predict(predictions: np.ndarray[Any, Any]) -> bytes:
    if predictions.dtype.kind in "OUS":
        listed: Any = json_data(predictions) if predictions.ndim == 1 else predictions.astype(str).tolist()
        return orjson.dumps({"predictions": listed})
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
