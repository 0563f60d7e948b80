"""V2 tensors <-> numpy arrays, in JSON and in the binary tensor data extension.

Every check that a client's tensor is well formed lives here, and every failure is a BadRequest with a
message that names the tensor and what was wrong, so no malformed input reaches the model.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from modelship_server.errors import BadRequest

# V2 datatype -> numpy dtype. BYTES tensors become object arrays of str (JSON) or bytes (binary).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_DATATYPE_BY_DTYPE = {dtype: name for name, dtype in DTYPES.items() if name != "BYTES"}
# Kinds of the array numpy infers from JSON values that each datatype family accepts.
_ACCEPTED_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
_MAX_ELEMENTS = 1 << 31


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype for a numpy dtype; strings and Python objects are BYTES."""
    return _DATATYPE_BY_DTYPE.get(dtype, "BYTES")


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if len(shape) > 32:
        raise BadRequest(f"input {name!r}: shape has {len(shape)} dimensions, at most 32 are supported")
    return tuple(shape)


def element_count(name: str, shape: tuple[int, ...]) -> int:
    count = math.prod(shape)
    if count > _MAX_ELEMENTS:
        raise BadRequest(f"input {name!r}: shape {list(shape)} has too many elements")
    return count


def from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray[Any, Any]:
    """The array a JSON tensor describes; data may be flat or nested, row-major either way."""
    dtype = DTYPES[datatype]
    count = element_count(name, shape)
    if not isinstance(data, list):
        data = [data] if isinstance(data, int | float | str | bool) and count == 1 else None
        if data is None:
            raise BadRequest(f"input {name!r}: 'data' must be a list")
    if datatype == "BYTES":
        return _bytes_from_json(name, shape, count, data)
    try:
        inferred = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise BadRequest(f"input {name!r}: 'data' is not a regular array of {datatype} values") from None
    if inferred.size != count:
        raise BadRequest(
            f"input {name!r}: shape {list(shape)} needs {count} values, 'data' has {inferred.size}"
        )
    accepted = _ACCEPTED_KINDS[dtype.kind]
    if inferred.dtype.kind not in accepted and not (inferred.size == 0 and inferred.dtype.kind == "f"):
        found = {"b": "booleans", "U": "strings", "O": "mixed or nested values"}.get(
            inferred.dtype.kind, "numbers"
        )
        raise BadRequest(f"input {name!r}: datatype {datatype} cannot hold {found}")
    if dtype.kind in "iu" and inferred.size:
        info = np.iinfo(dtype)
        if inferred.min() < info.min or inferred.max() > info.max:
            raise BadRequest(f"input {name!r}: a value is out of range for {datatype}")
    if inferred.dtype == dtype:  # the common case: FP64 numbers
        return inferred.reshape(shape)
    with np.errstate(over="ignore"):
        array = inferred.astype(dtype).reshape(shape)
    # JSON numbers are finite (the parser refuses the rest), so infinity here is an overflow of FP16/FP32.
    if dtype.kind == "f" and dtype.itemsize < 8 and not np.isfinite(array).all():
        raise BadRequest(f"input {name!r}: a value is out of range for {datatype}")
    return array


def _bytes_from_json(name: str, shape: tuple[int, ...], count: int, data: list[Any]) -> np.ndarray[Any, Any]:
    flat = _flatten(data) if any(isinstance(item, list) for item in data) else data
    if len(flat) != count:
        raise BadRequest(f"input {name!r}: shape {list(shape)} needs {count} values, 'data' has {len(flat)}")
    if not all(isinstance(item, str) for item in flat):
        raise BadRequest(f"input {name!r}: datatype BYTES takes strings")
    array = np.empty(count, dtype=object)
    array[:] = flat
    return array.reshape(shape)


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def from_binary(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview
) -> np.ndarray[Any, Any]:
    """The array a binary tensor holds (binary tensor data extension)."""
    count = element_count(name, shape)
    if datatype == "BYTES":
        items = _split_length_prefixed(name, raw)
        if len(items) != count:
            raise BadRequest(f"input {name!r}: shape {list(shape)} needs {count} values, got {len(items)}")
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"input {name!r}: shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(DTYPES[datatype]).reshape(shape)


def _split_length_prefixed(name: str, raw: bytes | memoryview) -> list[bytes]:
    items: list[bytes] = []
    view = memoryview(raw)
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise BadRequest(f"input {name!r}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise BadRequest(f"input {name!r}: a BYTES element runs past the end of its data")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    return items


def to_binary(array: np.ndarray[Any, Any]) -> bytes:
    """Raw little-endian bytes of an output tensor; BYTES elements carry a 4-byte length prefix."""
    if array.dtype.kind in "OUS":
        parts = []
        for item in array.ravel():
            encoded = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def json_data(array: np.ndarray[Any, Any]) -> Any:
    """What goes in an output's 'data': a flat array orjson writes natively, or a list for strings."""
    flat = array.ravel()
    if flat.dtype.kind in "OUS":
        return [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in flat]
    return flat
