"""An HTTP front on 127.0.0.1 before the real S3 server, to observe what the model server sends and to
inject what a real store does now and then (503 Slow Down). It forwards requests unchanged (same Host
header, so their signatures still hold) and records what it saw."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


def _access_key(authorization: str | None) -> str | None:
    """The key id of `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/s3/aws4_request, ...`."""
    if authorization is None or "Credential=" not in authorization:
        return None
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


class S3Front:
    """Answers the first `failures` GETs with 503 and forwards the rest; `answers` holds each status sent
    back, `security_tokens` each request's X-Amz-Security-Token header (None when absent) and `access_keys`
    the access key id its SigV4 Authorization header names (None when unsigned)."""

    def __init__(self, upstream: str, failures: int = 0) -> None:
        self.failures = failures
        self.answers: list[int] = []
        self.security_tokens: list[str | None] = []
        self.access_keys: list[str | None] = []
        target = urllib.parse.urlsplit(upstream)
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front.security_tokens.append(self.headers.get("X-Amz-Security-Token"))
                front.access_keys.append(_access_key(self.headers.get("Authorization")))
                if front.failures > 0:
                    front.failures -= 1
                    front.answers.append(503)
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
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
