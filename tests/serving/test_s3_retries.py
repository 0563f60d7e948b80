"""A transient S3 failure (503 Slow Down) is retried with backoff: the model still loads."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.s3_server import S3Server, s3_server
from tests.serving.support import ServerFactory, sha256_of

__all__ = ["s3_server"]


class FlakyFront:
    """An HTTP front on 127.0.0.1 that answers the first GETs with 503 and forwards the rest unchanged
    (same Host header, so the request's signature still holds)."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.failures = failures
        self.answers: list[int] = []
        target = urllib.parse.urlsplit(upstream)
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if front.failures > 0:
                    front.failures -= 1
                    front.answers.append(503)
                    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
                connection.request("GET", self.path, headers=dict(self.headers.items()))
                response = connection.getresponse()
                data = response.read()
                front.answers.append(response.status)
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky_front(s3_server: S3Server) -> Iterator[FlakyFront]:
    front = FlakyFront(s3_server.endpoint, failures=2)
    yield front
    front.close()


def test_a_model_loads_after_two_503_answers(
    servers: ServerFactory, s3_server: S3Server, flaky_front: FlakyFront, skops_model: Path
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
