"""A model that cannot be loaded safely stops start-up: exit code 1 and one clear line on stderr."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.serving.support import SERVER, SLOW_TYPE, Iris, run_to_failure, sha256_of, slow_model

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
