"""Models fetched over HTTP: from a local http.server on loopback, with the digest and size checked."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.serving.support import Iris, ServerFactory, run_to_failure, sha256_of, v2_request

MODEL = ("--model-name", "iris", "--model-version", "2", "--workers", "1")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files; under /unsized/ without Content-Length, so only the bytes counted can stop it."""

    def do_GET(self) -> None:
        if not self.path.startswith("/unsized/"):
            super().do_GET()
            return
        data = (Path(self.directory) / self.path.removeprefix("/unsized/")).read_bytes()
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def file_server(skops_model: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving the directory that holds the model files."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Handler, directory=str(skops_model.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_model_downloaded_over_http_is_verified_and_served(
    servers: ServerFactory, file_server: str, skops_model: Path, iris: Iris
) -> None:
    # Given the model on an HTTP server and its digest, when the server starts from the URL,
    server = servers.start(
        "--model-uri", f"{file_server}/iris.skops", "--sha256", sha256_of(skops_model), *MODEL
    )
    # then it serves the same predictions as the file.
    response = server.post_json("/v2/models/iris/infer", v2_request(iris.x[[0, 140]].tolist()))
    assert response.status == 200
    assert response.json()["outputs"][0]["data"] == iris.model.predict(iris.x[[0, 140]]).tolist()


def test_a_download_with_the_wrong_digest_stops_start_up(file_server: str) -> None:
    result = run_to_failure("--model-uri", f"{file_server}/iris.skops", "--sha256", "ab" * 32, *MODEL)
    assert result.returncode == 1
    assert "digest mismatch" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_download_larger_than_the_declared_limit_is_refused(file_server: str) -> None:
    # Given a limit smaller than the file, the Content-Length alone is enough to refuse it.
    result = run_to_failure("--model-uri", f"{file_server}/iris.skops", "--max-model-bytes", "1000", *MODEL)
    assert result.returncode == 1
    assert "more than the limit of 1000" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_download_without_a_length_is_cut_off_at_the_limit(file_server: str) -> None:
    # Given a server that does not say how big the file is, the bytes are counted as they come.
    result = run_to_failure(
        "--model-uri",
        f"{file_server}/unsized/iris.skops",
        "--format",
        "skops",
        "--max-model-bytes",
        "1000",
        *MODEL,
    )
    assert result.returncode == 1
    assert "larger than the limit of 1000" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_missing_url_stops_start_up(file_server: str) -> None:
    result = run_to_failure("--model-uri", f"{file_server}/gone.skops", *MODEL)
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and len(result.stderr.splitlines()) == 1


def test_an_unreachable_host_stops_start_up() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    result = run_to_failure("--model-uri", "http://127.0.0.1:9/iris.skops", "--download-timeout", "5", *MODEL)
    assert result.returncode == 1
    assert "cannot download model" in result.stderr and len(result.stderr.splitlines()) == 1
