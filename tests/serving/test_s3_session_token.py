"""Temporary credentials: AWS_SESSION_TOKEN beside the key and secret reaches the store with each request.

Versity Gateway's own IAM mints no sessions, so it refuses any token paired with a long-lived key as
InvalidToken, as AWS does for a wrong one; that refusal is the user-visible case tested here, and a
front before it shows the token the server sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serving.s3_front import S3Front
from tests.serving.s3_server import S3Server, assert_one_line_failure, run_to_failure, s3_server

__all__ = ["s3_server"]

TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken"


@pytest.fixture
def model_uri(s3_server: S3Server) -> str:
    s3_server.bucket("sessions").joinpath("model.skops").write_bytes(b"a model")
    return "s3://sessions/model.skops"


@pytest.fixture
def front(s3_server: S3Server) -> Iterator[S3Front]:
    front = S3Front(s3_server.endpoint)
    yield front
    front.close()


def test_the_session_token_is_sent_with_the_request(
    s3_server: S3Server, model_uri: str, front: S3Front
) -> None:
    # Given credentials with a session token in the server's environment
    # When the server downloads its model
    run_to_failure(
        "--model-uri",
        model_uri,
        env={**s3_server.env(), "MODELSHIP_S3_ENDPOINT": front.endpoint, "AWS_SESSION_TOKEN": TOKEN},
    )
    # Then the request to the store carried the token
    assert front.security_tokens == [TOKEN]


def test_a_refused_session_token_is_named_in_one_line(s3_server: S3Server, model_uri: str) -> None:
    # Given a token the store does not accept
    # When the server downloads its model
    result = run_to_failure("--model-uri", model_uri, env={**s3_server.env(), "AWS_SESSION_TOKEN": TOKEN})
    # Then it stops with one line that names the token
    assert_one_line_failure(result, "access denied", "session token (AWS_SESSION_TOKEN) was refused")
