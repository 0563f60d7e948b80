"""Models from S3: the server downloads s3://bucket/key, or every object under s3://bucket/prefix/, from a
real S3 server (Versity Gateway on 127.0.0.1) as a user holding read-only rights on the bucket, verifies it,
and serves it; every way the download can fail stops start-up with exit code 1 and one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.serving.s3_server import (
    MODEL,
    OTHER_ACCESS,
    OTHER_SECRET,
    READER_ACCESS,
    READER_SECRET,
    REGION,
    S3Server,
    assert_one_line_failure,
    run_to_failure,
    s3_server,
)
from tests.serving.support import Iris, ServerFactory, free_port, sha256_of, v2_request

__all__ = ["s3_server"]


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server, skops_model: Path) -> str:
    models = s3_server.bucket("models")
    (models / "iris").mkdir(exist_ok=True)
    shutil.copyfile(skops_model, models / "iris" / "model.skops")
    return "models"


@pytest.fixture(scope="module")
def onnx_directory(iris: Iris, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ONNX model whose weights are in a second file beside it: a format that needs a directory. (A
    small neural network: its weights are tensors, where a linear model's are attributes of one node.)"""
    import onnx
    from onnx import numpy_helper
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    network = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2000, random_state=0).fit(iris.x, iris.y)
    graph = to_onnx(network, iris.x[:1].astype(np.float32))
    for tensor in graph.graph.initializer:
        # External data holds raw bytes only; shape tensors stay inline (the 64-byte threshold).
        if tensor.data_type == onnx.TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    directory = tmp_path_factory.mktemp("onnx-directory")
    onnx.save_model(
        graph,
        str(directory / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=64,
    )
    assert (directory / "weights.bin").stat().st_size > 0, "the fixture must make a two-file model"
    return directory


def sha256sum_of_directory(directory: Path) -> str:
    """A model directory's digest as serving_image/README.md tells users to compute it."""
    done = subprocess.run(
        ["sh", "-c", "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()[0]


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


def test_the_servers_user_may_not_write_to_the_bucket(s3_server: S3Server, bucket: str) -> None:
    import obstore
    from obstore.exceptions import PermissionDeniedError
    from obstore.store import S3Store

    # Given the credentials every server test uses, which read the model
    store = S3Store(
        bucket,
        endpoint=s3_server.endpoint,
        region=REGION,
        access_key_id=READER_ACCESS,
        secret_access_key=READER_SECRET,
        client_options={"allow_http": True},
    )
    # When they try to replace it
    # Then the store refuses
    with pytest.raises(PermissionDeniedError):
        obstore.put(store, "iris/model.skops", b"not a model")


def test_a_model_directory_under_a_prefix_is_served(
    servers: ServerFactory, s3_server: S3Server, bucket: str, onnx_directory: Path
) -> None:
    # Given an ONNX model whose weights are in a second object under the same prefix
    shutil.copytree(onnx_directory, s3_server.bucket(bucket) / "iris-onnx")
    # When the server starts from the prefix, with the directory's digest computed by sha256sum
    server = servers.start(
        "--model-uri",
        f"s3://{bucket}/iris-onnx/",
        "--format",
        "onnx",
        "--sha256",
        sha256sum_of_directory(onnx_directory),
        *MODEL,
        env=s3_server.env(),
    )
    # Then it loaded the model with its weights and answers
    answer = server.post_json("/v2/models/iris/infer", v2_request([[5.1, 3.5, 1.4, 0.2]]))
    assert answer.status == 200, answer.body


def test_a_directory_digest_mismatch_stops_start_up(
    s3_server: S3Server, bucket: str, onnx_directory: Path
) -> None:
    shutil.copytree(onnx_directory, s3_server.bucket(bucket) / "iris-onnx-mismatch")
    result = run_to_failure(
        "--model-uri",
        f"s3://{bucket}/iris-onnx-mismatch/",
        "--format",
        "onnx",
        "--sha256",
        "0" * 64,
        env=s3_server.env(),
    )
    assert_one_line_failure(result, "digest mismatch", sha256sum_of_directory(onnx_directory))


def test_a_directory_over_the_limit_in_all_is_refused(
    s3_server: S3Server, bucket: str, onnx_directory: Path
) -> None:
    # Given a directory whose files are each under the limit but not together
    shutil.copytree(onnx_directory, s3_server.bucket(bucket) / "iris-onnx-large")
    largest = max(path.stat().st_size for path in onnx_directory.iterdir())
    total = sum(path.stat().st_size for path in onnx_directory.iterdir())
    limit = str(largest + 1)
    # When the server is limited to one file's size
    result = run_to_failure(
        "--model-uri",
        f"s3://{bucket}/iris-onnx-large/",
        "--format",
        "onnx",
        "--max-model-bytes",
        limit,
        env=s3_server.env(),
    )
    # Then the directory is refused by its total
    assert_one_line_failure(result, f"is {total} bytes, more than the limit of {limit}")


def test_a_directory_without_one_file_of_the_format_is_refused(
    s3_server: S3Server, bucket: str, onnx_directory: Path
) -> None:
    shutil.copytree(onnx_directory, s3_server.bucket(bucket) / "iris-onnx-as-skops")
    result = run_to_failure(
        "--model-uri", f"s3://{bucket}/iris-onnx-as-skops/", "--format", "skops", env=s3_server.env()
    )
    assert_one_line_failure(result, "exactly one skops file", "found none")


def test_an_empty_prefix_is_named(s3_server: S3Server, bucket: str) -> None:
    result = run_to_failure("--model-uri", f"s3://{bucket}/nothing/", "--format", "onnx", env=s3_server.env())
    assert_one_line_failure(result, "no objects under prefix 'nothing/'")


def test_a_missing_bucket_is_named(s3_server: S3Server, bucket: str) -> None:
    result = run_to_failure("--model-uri", "s3://no-such-bucket/iris/model.skops", env=s3_server.env())
    assert_one_line_failure(result, "bucket 'no-such-bucket' does not exist")


def test_a_missing_key_is_named(s3_server: S3Server, bucket: str) -> None:
    result = run_to_failure("--model-uri", f"s3://{bucket}/iris/nothing.skops", env=s3_server.env())
    assert_one_line_failure(result, "key 'iris/nothing.skops' does not exist in bucket 'models'")


def test_a_user_without_rights_on_the_bucket_is_denied(s3_server: S3Server, bucket: str) -> None:
    result = run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", env=s3_server.env(OTHER_ACCESS, OTHER_SECRET)
    )
    assert_one_line_failure(result, "access denied")


def test_wrong_credentials_are_denied(s3_server: S3Server, bucket: str) -> None:
    result = run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", env=s3_server.env("nobody", "not-a-secret")
    )
    assert_one_line_failure(result, "access denied")


def test_an_unreachable_endpoint_is_named(s3_server: S3Server, bucket: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run_to_failure(
        "--model-uri",
        f"s3://{bucket}/iris/model.skops",
        "--download-timeout",
        "2",
        env={**s3_server.env(), "MODELSHIP_S3_ENDPOINT": nowhere},
    )
    assert_one_line_failure(result, f"cannot reach S3 endpoint {nowhere}")


def test_a_digest_mismatch_stops_start_up(s3_server: S3Server, bucket: str, skops_model: Path) -> None:
    result = run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", "--sha256", "0" * 64, env=s3_server.env()
    )
    assert_one_line_failure(result, "digest mismatch", sha256_of(skops_model))


def test_a_model_larger_than_the_limit_is_refused(s3_server: S3Server, bucket: str) -> None:
    result = run_to_failure(
        "--model-uri", f"s3://{bucket}/iris/model.skops", "--max-model-bytes", "100", env=s3_server.env()
    )
    assert_one_line_failure(result, "more than the limit of 100")
