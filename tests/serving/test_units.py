"""The pure parts, directly: tensors, the V2 codec, settings, and which skops types are trusted."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelship_server.errors import BadRequest, StartupError
from modelship_server.loading import is_library_type
from modelship_server.predictor import SklearnPredictor
from modelship_server.protocol import encode_v2_infer, parse_v2_infer
from modelship_server.settings import parse_settings
from modelship_server.tensors import DTYPES, from_binary, from_json, to_binary
from tests.serving.support import Iris

REQUIRED = {"MODELSHIP_MODEL_URI": "/m.skops", "MODELSHIP_MODEL_NAME": "iris", "MODELSHIP_MODEL_VERSION": "1"}


def test_flat_and_nested_json_data_give_the_same_tensor() -> None:
    flat = from_json("x", "FP32", (2, 2), [1, 2, 3, 4])
    nested = from_json("x", "FP32", (2, 2), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(flat, nested)
    assert flat.dtype == np.float32 and flat.shape == (2, 2)


@pytest.mark.parametrize(
    "datatype, value", [("INT8", 128), ("UINT8", -1), ("UINT16", 70000), ("INT32", 2**31)]
)
def test_integers_out_of_range_for_their_datatype_are_refused(datatype: str, value: int) -> None:
    with pytest.raises(BadRequest, match=f"out of range for {datatype}"):
        from_json("x", datatype, (1,), [value])


def test_a_float_too_big_for_fp16_is_refused() -> None:
    with pytest.raises(BadRequest, match="out of range for FP16"):
        from_json("x", "FP16", (1,), [1e6])


def test_bytes_tensors_hold_strings() -> None:
    array = from_json("x", "BYTES", (2, 1), [["a"], ["é"]])
    assert array.dtype == object and array.tolist() == [["a"], ["é"]]


@pytest.mark.parametrize("datatype", [name for name in DTYPES if name != "BYTES"])
def test_binary_tensors_round_trip_for_every_numeric_datatype(datatype: str) -> None:
    original = np.arange(6).reshape(2, 3).astype(DTYPES[datatype])
    np.testing.assert_array_equal(from_binary("x", datatype, (2, 3), to_binary(original)), original)


def test_binary_bytes_elements_are_length_prefixed() -> None:
    raw = to_binary(np.array(["ab", "", "c"], dtype=object))
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + struct.pack("<I", 1) + b"c"
    assert from_binary("x", "BYTES", (3,), raw).tolist() == [b"ab", b"", b"c"]


def test_binary_data_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(BadRequest, match="needs 32 bytes, got 31"):
        from_binary("x", "FP64", (1, 4), b"\0" * 31)


def test_binary_data_output_makes_every_requested_output_binary(iris: Iris) -> None:
    predictor = SklearnPredictor(iris.model)
    doc = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": iris.x[0].tolist()}],
        "outputs": [{"name": "predict_proba"}],
        "parameters": {"binary_data_output": True},
    }
    call = parse_v2_infer(json.dumps(doc).encode(), predictor)
    body, header_length = encode_v2_infer(
        call, {"predict_proba": iris.model.predict_proba(iris.x[:1])}, "iris", "1"
    )
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 24}
    np.testing.assert_allclose(
        np.frombuffer(body[header_length:], "<f8"), iris.model.predict_proba(iris.x[:1])[0]
    )


def test_integer_rows_are_converted_to_the_models_float_input(iris: Iris) -> None:
    doc = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [5, 3, 1, 0]}]}
    call = parse_v2_infer(json.dumps(doc).encode(), SklearnPredictor(iris.model))
    assert call.x.dtype == np.float64 and call.x.tolist() == [[5.0, 3.0, 1.0, 0.0]]


def test_settings_come_from_the_environment_and_flags_win() -> None:
    env = {
        **REQUIRED,
        "MODELSHIP_PORT": "9000",
        "MODELSHIP_TRUSTED_TYPES": "a.B, c.D",
        "MODELSHIP_ALLOW_UNSAFE_PICKLE": "true",
        "MODELSHIP_WORKERS": "3",
    }
    settings = parse_settings(["--port", "9001", "--trusted-type", "e.F"], env)
    assert settings.port == 9001
    assert settings.trusted_types == ("e.F",)
    assert settings.allow_unsafe_pickle is True
    assert settings.workers == 3
    assert parse_settings([], env).trusted_types == ("a.B", "c.D")


def test_a_settings_round_trip_through_the_environment_is_lossless() -> None:
    settings = parse_settings(
        ["--sha256", "AB" * 32, "--trusted-type", "x.Y", "--max-batch-wait-ms", "0.5"], REQUIRED
    )
    assert parse_settings([], settings.to_env()) == settings


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "http"], "invalid --port 'http'"),
        (["--workers", "0"], "invalid --workers '0': must be at least 1"),
        (["--sha256", "xyz"], "must be 64 hexadecimal digits"),
        (["--max-batch-wait-ms", "-1"], "must be a finite number >= 0"),
    ],
)
def test_a_bad_setting_is_named_in_the_error(args: list[str], message: str) -> None:
    with pytest.raises(StartupError, match=message):
        parse_settings(args, REQUIRED)


@pytest.mark.parametrize(
    "name, trusted",
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.neighbors._kd_tree.KDTree", True),
        ("numpy.float64", True),
        ("numpy.ndarray", True),
        # A numpy class that writes files when constructed, and functions that may run code when called.
        ("numpy.memmap", False),
        ("numpy.testing._private.utils.runstring", False),
        ("sklearn.utils._testing.assert_run_python_script_without_output", False),
        ("os.system", False),
        ("builtins.eval", False),
        ("sklearn.no_such_module.Thing", False),
    ],
)
def test_only_scikit_learn_classes_and_numpy_data_types_are_trusted_without_asking(
    name: str, trusted: bool
) -> None:
    assert is_library_type(name) is trusted


def test_a_text_model_takes_bytes_and_answers_with_string_labels() -> None:
    # Given a pipeline that classifies sentences into string labels,
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(
        ["good film", "great acting", "bad plot", "awful film"], ["pos", "pos", "neg", "neg"]
    )
    predictor = SklearnPredictor(model)
    assert predictor.input.metadata() == {"name": "input-0", "datatype": "BYTES", "shape": [-1]}
    # when two sentences come as a BYTES tensor,
    doc = {
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["great film", "bad acting"]}]
    }
    call = parse_v2_infer(json.dumps(doc).encode(), predictor)
    body, _ = encode_v2_infer(call, predictor.predict(call.x, call.outputs, finite=True), "reviews", "1")
    # then the labels come back as BYTES strings.
    output = json.loads(body)["outputs"][0]
    assert output["datatype"] == "BYTES"
    assert output["data"] == model.predict(["great film", "bad acting"]).tolist()


@pytest.mark.parametrize("version", ["", "1 2", "a/b", "v1\r\nx-injected: 1", "é"])
def test_a_model_version_that_cannot_go_in_a_path_or_header_is_refused(version: str) -> None:
    with pytest.raises(StartupError, match="--model-version"):
        parse_settings([], {**REQUIRED, "MODELSHIP_MODEL_VERSION": version})
