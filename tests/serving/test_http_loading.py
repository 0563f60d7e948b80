"""Models fetched over HTTP: from a local http.server on loopback, with the digest and size checked."""

from __future__ import annotations

import http.server
import ssl
import subprocess
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


@pytest.fixture(scope="module")
def tls_file_server(
    skops_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; yields its URL and the certificate."""
    keys = tmp_path_factory.mktemp("tls")
    certificate, key = keys / "cert.pem", keys / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Handler, directory=str(skops_model.parent))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", certificate
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


def test_a_model_downloaded_over_https_is_served(
    servers: ServerFactory, tls_file_server: tuple[str, Path], skops_model: Path, iris: Iris
) -> None:
    # Given an HTTPS server whose certificate the model server trusts (SSL_CERT_FILE),
    url, certificate = tls_file_server
    server = servers.start(
        "--model-uri",
        f"{url}/iris.skops",
        "--sha256",
        sha256_of(skops_model),
        *MODEL,
        env={"SSL_CERT_FILE": str(certificate)},
    )
    # then the model downloads and serves.
    response = server.post_json("/v2/models/iris/infer", v2_request(iris.x[:1].tolist()))
    assert response.status == 200


def test_an_https_server_with_an_untrusted_certificate_stops_start_up(
    tls_file_server: tuple[str, Path],
) -> None:
    url, _ = tls_file_server
    result = run_to_failure("--model-uri", f"{url}/iris.skops", *MODEL)
    assert result.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr and len(result.stderr.splitlines()) == 1
