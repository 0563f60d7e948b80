"""A transient S3 failure (503 Slow Down) is retried with backoff: the model still loads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.s3_front import S3Front
from tests.serving.s3_server import S3Server, s3_server
from tests.serving.support import ServerFactory, sha256_of

__all__ = ["s3_server"]


@pytest.fixture
def flaky_front(s3_server: S3Server) -> Iterator[S3Front]:
    front = S3Front(s3_server.endpoint, failures=2)
    yield front
    front.close()


def test_a_model_loads_after_two_503_answers(
    servers: ServerFactory, s3_server: S3Server, flaky_front: S3Front, skops_model: Path
) -> None:
    # Given a bucket holding the model, behind a front that fails the first two GETs
    s3_server.bucket("retries").joinpath("model.skops").write_bytes(skops_model.read_bytes())
    # When the server starts from it
    servers.start(
        "--model-uri",
        "s3://retries/model.skops",
        "--sha256",
        sha256_of(skops_model),
        "--model-name",
        "iris",
        "--model-version",
        "1",
        "--workers",
        "1",
        env={**s3_server.env(), "MODELSHIP_S3_ENDPOINT": flaky_front.endpoint},
    )
    # Then it became ready, after the two failures and a retried download
    assert flaky_front.answers == [503, 503, 200]
