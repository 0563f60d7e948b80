"""Models from S3: the server downloads s3://bucket/key from a real S3 server (Versity Gateway on 127.0.0.1),
verifies it, and serves it; every way the download can fail stops start-up with exit code 1 and one line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serving.s3_server import OTHER_ACCESS, OTHER_SECRET, S3Server, s3_server
from tests.serving.support import HERE, SERVER, ServerFactory, free_port, sha256_of, v2_request

__all__ = ["s3_server"]

MODEL = ("--model-name", "iris", "--model-version", "1", "--workers", "1")


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server, skops_model: Path) -> str:
    models = s3_server.bucket("models")
    (models / "iris").mkdir(exist_ok=True)
    shutil.copyfile(skops_model, models / "iris" / "model.skops")
    return "models"


def _run_to_failure(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER), "--host", "127.0.0.1", "--port", str(free_port()), *args, *MODEL],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(HERE), **env},
    )


def _assert_one_line_failure(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_a_model_in_s3_is_served(
    servers: ServerFactory, s3_server: S3Server, bucket: str, skops_model: Path
) -> None:
    server = servers.start(
        "--model-uri",
        f"s3://{bucket}/iris/model.skops",
        "--sha256",
        sha256_of(skops_model),
        *MODEL,
        env=s3_server.env(),
    )
    answer = server.post_json("/v2/models/iris/infer", v2_request([[5.1, 3.5, 1.4, 0.2]]))
    assert answer.status == 200, answer.body


def test_a_missing_bucket_is_named(s3_server: S3Server, bucket: str) -> None:
    result = _run_to_failure("--model-uri", "s3://no-such-bucket/iris/model.skops", env=s3_server.env())
    _assert_one_line_failure(result, "bucket 'no-such-bucket' does not exist")


def test_a_missing_key_is_named(s3_server: S3Server, bucket: str) -> None:
    result = _run_to_failure("--model-uri", f"s3://{bucket}/iris/nothing.skops", env=s3_server.env())
    _assert_one_line_failure(result, "key 'iris/nothing.skops' does not exist in bucket 'models'")


def test_a_user_without_access_is_denied(s3_server: S3Server, bucket: str) -> None:
    result = _run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", env=s3_server.env(OTHER_ACCESS, OTHER_SECRET)
    )
    _assert_one_line_failure(result, "access denied")


def test_wrong_credentials_are_denied(s3_server: S3Server, bucket: str) -> None:
    result = _run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", env=s3_server.env("nobody", "not-a-secret")
    )
    _assert_one_line_failure(result, "access denied")


def test_an_unreachable_endpoint_is_named(s3_server: S3Server, bucket: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = _run_to_failure(
        "--model-uri",
        f"s3://{bucket}/iris/model.skops",
        "--download-timeout",
        "2",
        env={**s3_server.env(), "MODELSHIP_S3_ENDPOINT": nowhere},
    )
    _assert_one_line_failure(result, f"cannot reach S3 endpoint {nowhere}")


def test_a_digest_mismatch_stops_start_up(s3_server: S3Server, bucket: str, skops_model: Path) -> None:
    result = _run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", "--sha256", "0" * 64, env=s3_server.env()
    )
    _assert_one_line_failure(result, "digest mismatch", sha256_of(skops_model))


def test_a_model_larger_than_the_limit_is_refused(s3_server: S3Server, bucket: str) -> None:
    result = _run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", "--max-model-bytes", "100", env=s3_server.env()
    )
    _assert_one_line_failure(result, "more than the limit of 100")


def test_a_key_prefix_is_refused_with_the_reason(s3_server: S3Server, bucket: str) -> None:
    result = _run_to_failure("--model-uri", f"s3://{bucket}/iris/", "--format", "skops", env=s3_server.env())
    _assert_one_line_failure(result, "names a key prefix")
