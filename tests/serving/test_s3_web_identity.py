"""Web identity (IRSA-style): no key in the environment, only the pod's token file and a role; the server
exchanges the token at the STS (AssumeRoleWithWebIdentity) and signs its S3 requests with what it gets.

The STS is tests/serving/sts.py over HTTPS (object_store will not call an STS over http); the store is the
real Versity Gateway behind S3Front, which shows the key and the session token each request carried."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serving.s3_front import S3Front
from tests.serving.s3_server import (
    MODEL,
    READER_ACCESS,
    READER_SECRET,
    S3Server,
    assert_one_line_failure,
    run_to_failure,
    s3_server,
)
from tests.serving.sts import Issued, Sts, certificates
from tests.serving.support import ServerFactory, sha256_of, v2_request

__all__ = ["s3_server"]

POD_TOKEN = "eyJhbGciOiJSUzI1NiJ9.the-pods-projected-service-account-token.signature"
ROLE_ARN = "arn:aws:iam::123456789012:role/modelship-iris"
SESSION = Issued("ASIAMODELSHIPSESSION", "session-secret", "FwoGZXIvYXdzEXAMPLEissuedsessiontoken")

StsFactory = Callable[[Issued], Sts]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return certificates(tmp_path_factory.mktemp("sts-tls"))


@pytest.fixture
def sts(tls: tuple[Path, Path, Path]) -> Iterator[StsFactory]:
    """An STS that accepts POD_TOKEN for ROLE_ARN and issues the credentials it is given."""
    started: list[Sts] = []

    def start(issued: Issued) -> Sts:
        _, leaf, key = tls
        started.append(Sts(leaf, key, POD_TOKEN, ROLE_ARN, issued))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, secret or session token reaches the server from the test runner's environment (an empty
    value would not do: object_store takes an empty AWS_ACCESS_KEY_ID as a key)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def front(s3_server: S3Server) -> Iterator[S3Front]:
    front = S3Front(s3_server.endpoint)
    yield front
    front.close()


@pytest.fixture
def model(s3_server: S3Server, skops_model: Path) -> str:
    s3_server.bucket("irsa").joinpath("model.skops").write_bytes(skops_model.read_bytes())
    return "s3://irsa/model.skops"


def pod_env(
    tmp_path: Path, tls: tuple[Path, Path, Path], sts: Sts, front: S3Front, token: str = POD_TOKEN
) -> dict[str, str]:
    """A pod's environment under IRSA: the projected token's file and the role, and no key (see `no_keys`)."""
    token_file = tmp_path / "token"
    token_file.write_text(token)
    ca, _, _ = tls
    return {
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_ENDPOINT_URL_STS": sts.endpoint,
        "SSL_CERT_FILE": str(ca),
        "MODELSHIP_S3_ENDPOINT": front.endpoint,
        "MODELSHIP_S3_REGION": "us-east-1",
        "MODELSHIP_S3_ADDRESSING_STYLE": "path",
    }


def test_the_pods_token_is_exchanged_and_the_issued_session_signs_the_download(
    tmp_path: Path, tls: tuple[Path, Path, Path], sts: StsFactory, front: S3Front, model: str
) -> None:
    # Given a pod with only a web-identity token file and a role, and an STS that issues a session
    issuer = sts(SESSION)
    # When the server downloads its model
    result = run_to_failure("--model-uri", model, env=pod_env(tmp_path, tls, issuer, front))
    # Then it asked the STS for that role with exactly the file's token
    assert [(call.method, call.params) for call in issuer.calls] == [
        (
            "POST",
            {
                "Action": "AssumeRoleWithWebIdentity",
                "DurationSeconds": "3600",
                "RoleArn": ROLE_ARN,
                "RoleSessionName": "WebIdentitySession",
                "Version": "2011-06-15",
                "WebIdentityToken": POD_TOKEN,
            },
        )
    ]
    # And the store saw the issued key and session token, which Versity Gateway (minting no sessions)
    # refuses, named in one line
    assert (front.access_keys, front.security_tokens) == ([SESSION.access_key_id], [SESSION.session_token])
    assert_one_line_failure(
        result,
        f"access denied: the session token the STS issued for role {ROLE_ARN} (web identity) was refused",
    )


def test_a_model_is_served_with_credentials_from_the_sts(
    servers: ServerFactory,
    tmp_path: Path,
    tls: tuple[Path, Path, Path],
    sts: StsFactory,
    front: S3Front,
    model: str,
    skops_model: Path,
) -> None:
    # Given an STS that hands out the reader's key with an empty session token (AWS always issues one;
    # Versity Gateway accepts long-lived keys only and takes an empty X-Amz-Security-Token for none, so
    # this is how the whole path, exchange then download, runs against the real store)
    issuer = sts(Issued(READER_ACCESS, READER_SECRET, ""))
    # When the server starts with no key of its own
    server = servers.start(
        "--model-uri",
        model,
        "--sha256",
        sha256_of(skops_model),
        *MODEL,
        env=pod_env(tmp_path, tls, issuer, front),
    )
    # Then it downloaded the model with the issued key, and serves it
    assert [call.params["WebIdentityToken"] for call in issuer.calls] == [POD_TOKEN]
    assert (set(front.access_keys), set(front.security_tokens)) == ({READER_ACCESS}, {""})
    answer = server.post_json("/v2/models/iris/infer", v2_request([[5.1, 3.5, 1.4, 0.2]]))
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    ("token", "role", "answer"),
    [
        ("an-expired-token", ROLE_ARN, "InvalidIdentityToken"),
        (POD_TOKEN, "arn:aws:iam::123456789012:role/not-trusting-this-pod", "AccessDenied"),
    ],
)
def test_an_exchange_the_sts_refuses_is_named_in_one_line(
    tmp_path: Path,
    tls: tuple[Path, Path, Path],
    sts: StsFactory,
    front: S3Front,
    model: str,
    token: str,
    role: str,
    answer: str,
) -> None:
    # Given a pod whose token, or whose role, the STS does not accept
    issuer = sts(SESSION)
    env = {**pod_env(tmp_path, tls, issuer, front, token=token), "AWS_ROLE_ARN": role}
    # When the server downloads its model
    result = run_to_failure("--model-uri", model, env=env)
    # Then it stops with one line naming web identity, the role and the STS's answer, before any request
    # reached the store
    assert [call.params["WebIdentityToken"] for call in issuer.calls] == [token]
    assert front.answers == []
    assert_one_line_failure(
        result, "web identity: the STS refused AssumeRoleWithWebIdentity", f"for role {role}", f"({answer}: "
    )


def test_an_sts_whose_certificate_is_not_trusted_is_named_in_one_line(
    tmp_path: Path, tls: tuple[Path, Path, Path], sts: StsFactory, front: S3Front, model: str
) -> None:
    # Given a pod that does not trust the STS's certificate (no SSL_CERT_FILE naming its CA)
    issuer = sts(SESSION)
    env = pod_env(tmp_path, tls, issuer, front)
    del env["SSL_CERT_FILE"]
    # When the server downloads its model
    result = run_to_failure("--model-uri", model, env=env)
    # Then it stops with one line naming the STS it could not reach over https
    assert front.answers == []
    assert_one_line_failure(result, f"web identity: cannot reach the STS at {issuer.endpoint} over https")


def test_an_unreadable_token_file_is_named_in_one_line(
    tmp_path: Path, tls: tuple[Path, Path, Path], sts: StsFactory, front: S3Front, model: str
) -> None:
    # Given a pod whose token file is not there (the service account token is not projected)
    issuer = sts(SESSION)
    missing = tmp_path / "not-projected" / "token"
    env = {**pod_env(tmp_path, tls, issuer, front), "AWS_WEB_IDENTITY_TOKEN_FILE": str(missing)}
    # When the server downloads its model
    result = run_to_failure("--model-uri", model, env=env)
    # Then it stops with one line naming the file, having asked neither the STS nor the store
    assert (issuer.calls, front.answers) == ([], [])
    assert_one_line_failure(result, f"web identity: cannot read the token file '{missing}'")
