"""A model that cannot be loaded safely stops start-up: exit code 1 and one clear line on stderr."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.serving.support import (
    SERVER,
    SLOW_TYPE,
    Iris,
    ServerFactory,
    run_to_failure,
    sha256_of,
    slow_model,
    v2_request,
)

MODEL = ("--model-name", "iris", "--model-version", "1", "--workers", "1")


def _assert_one_line_failure(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_a_missing_model_file_stops_start_up(tmp_path: Path) -> None:
    result = run_to_failure("--model-uri", (tmp_path / "nowhere.skops").as_uri(), *MODEL)
    _assert_one_line_failure(result, "does not exist", "nowhere.skops")


def test_an_unsupported_uri_scheme_stops_start_up() -> None:
    result = run_to_failure("--model-uri", "gs://bucket/iris.skops", *MODEL)
    _assert_one_line_failure(result, "unsupported model URI scheme 'gs'")


def test_a_digest_mismatch_stops_start_up_before_loading(skops_model: Path) -> None:
    result = run_to_failure("--model-uri", str(skops_model), "--sha256", "0" * 64, *MODEL)
    _assert_one_line_failure(result, "digest mismatch", sha256_of(skops_model))


@pytest.mark.parametrize(
    "args, phrase",
    [
        (("--format", "xgboost"), "unsupported model format 'xgboost'"),
        ((), "cannot tell the model format from 'model.bin'"),
    ],
    ids=["named", "from-extension"],
)
def test_an_unsupported_format_stops_start_up(
    skops_model: Path, tmp_path: Path, args: tuple[str, ...], phrase: str
) -> None:
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(skops_model.read_bytes())
    result = run_to_failure("--model-uri", str(renamed), *args, *MODEL)
    _assert_one_line_failure(result, phrase)


def test_a_skops_file_with_an_untrusted_type_stops_start_up(iris: Iris, tmp_path: Path) -> None:
    # Given a skops file holding a class that is neither scikit-learn's nor numpy's,
    path = slow_model(iris, tmp_path / "custom.skops", delay_s=0.0, marker=tmp_path / "marker")
    # when the server is started without trusting it, then it refuses and names the type.
    result = run_to_failure("--model-uri", str(path), *MODEL)
    _assert_one_line_failure(result, "not trusted", SLOW_TYPE, "--trusted-type")


def test_a_joblib_file_without_the_pickle_flag_stops_start_up(joblib_model: Path) -> None:
    result = run_to_failure("--model-uri", str(joblib_model), *MODEL)
    _assert_one_line_failure(result, "--allow-unsafe-pickle", "iris.joblib")


def test_a_corrupt_skops_file_stops_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.skops"
    broken.write_bytes(b"this is not a zip file")
    result = run_to_failure("--model-uri", str(broken), *MODEL)
    _assert_one_line_failure(result, "cannot load skops model 'broken.skops'")


def test_a_missing_model_name_is_one_line_too(skops_model: Path) -> None:
    result = run_to_failure("--model-uri", str(skops_model), "--model-version", "1")
    _assert_one_line_failure(result, "--model-name is required", "MODELSHIP_MODEL_NAME")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_already_taken_stops_start_up(skops_model: Path, workers: str) -> None:
    # Given another program listening on the port,
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        # when the server starts on it (one process, or workers that bind it themselves),
        result = subprocess.run(
            [
                str(SERVER),
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--model-uri",
                str(skops_model),
                "--model-name",
                "iris",
                "--model-version",
                "1",
                "--workers",
                workers,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    # then it says so in one line.
    _assert_one_line_failure(result, f"cannot listen on 127.0.0.1:{port}", "in use")


def _with_external_data(directory: Path) -> Path:
    """A small ONNX model (scores = rows x weights) whose weights live in weights.bin beside it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), name="weights")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["rows", "weights"], ["scores"])],
        "linear",
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = directory / "external.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (directory / "weights.bin").exists()
    return path


def test_a_pinned_onnx_file_whose_tensors_live_beside_it_stops_start_up(tmp_path: Path) -> None:
    # Given an ONNX file that keeps its tensors in weights.bin, pinned by the digest of the file alone
    path = _with_external_data(tmp_path)
    # When the server is started with that digest
    result = run_to_failure("--model-uri", path.as_uri(), "--sha256", sha256_of(path), *MODEL)
    # Then it refuses to load bytes the digest does not cover, and says what to do instead
    _assert_one_line_failure(result, "weights.bin", "does not cover", "model directory")


def test_an_unpinned_onnx_file_with_its_tensors_beside_it_is_served(
    servers: ServerFactory, tmp_path: Path
) -> None:
    # Given the same kind of file, with no digest to keep (a model baked into an image, say)
    path = _with_external_data(tmp_path)
    # When the server is started on it and asked for the scores of one row of ones
    server = servers.start("--model-uri", path.as_uri(), *MODEL)
    response = server.request(
        "POST", "/v2/models/iris/infer", json.dumps(v2_request([[1, 1, 1, 1]])).encode()
    )
    # Then it answers with the weights it read from weights.bin (nothing was promised about those bytes)
    assert response.status == 200, response.body
    assert json.loads(response.body)["outputs"][0]["data"] == [4.0, 4.0, 4.0]
