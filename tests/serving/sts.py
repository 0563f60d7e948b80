"""An STS on 127.0.0.1 for web-identity (IRSA-style) tests: AssumeRoleWithWebIdentity as AWS documents it
(https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html).

It speaks HTTPS because object_store does: its web-identity provider forces `allow_http` off for the STS
call whatever the client options or AWS_ALLOW_HTTP say (a plain http:// AWS_ENDPOINT_URL_STS fails with a
reqwest BadScheme). The model server trusts this STS through SSL_CERT_FILE, read by the native root store
object_store loads, as a pod would with a mounted CA bundle; `certificates` makes a CA and a leaf for
127.0.0.1 with the openssl CLI.

Parameters are read from the query string and from a form body alike (AWS takes both; object_store sends a
POST with the parameters in the query and no body). Each call is recorded; a token or role other than the
expected ones is answered with AWS's error document.
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
EXPIRATION = "2099-01-01T00:00:00Z"


@dataclass(frozen=True)
class Issued:
    """The temporary credentials a successful AssumeRoleWithWebIdentity hands out."""

    access_key_id: str
    secret_access_key: str
    session_token: str


@dataclass(frozen=True)
class Call:
    """One request the STS received: its method and its parameters (query and form merged)."""

    method: str
    params: dict[str, str]


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA certificate, and a leaf certificate and key for IP 127.0.0.1 signed by it (webpki, which
    object_store uses, accepts no self-signed leaf as its own anchor)."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    leaf, leaf_key, request = directory / "sts.pem", directory / "sts.key", directory / "sts.csr"
    extensions = directory / "sts.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=modelship-test-CA -keyout {ca_key} -out {ca}",
        f"req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {leaf_key} -out {request}",
        f"x509 -req -in {request} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 1 -extfile {extensions}"
        f" -out {leaf}",
    ):
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    return ca, leaf, leaf_key


def _success(issued: Issued) -> bytes:
    return (
        f'<AssumeRoleWithWebIdentityResponse xmlns="{NAMESPACE}">'
        "<AssumeRoleWithWebIdentityResult>"
        "<SubjectFromWebIdentityToken>system:serviceaccount:models:iris</SubjectFromWebIdentityToken>"
        "<Credentials>"
        f"<AccessKeyId>{escape(issued.access_key_id)}</AccessKeyId>"
        f"<SecretAccessKey>{escape(issued.secret_access_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(issued.session_token)}</SessionToken>"
        f"<Expiration>{EXPIRATION}</Expiration>"
        "</Credentials>"
        "</AssumeRoleWithWebIdentityResult>"
        "<ResponseMetadata><RequestId>modelship-test</RequestId></ResponseMetadata>"
        "</AssumeRoleWithWebIdentityResponse>"
    ).encode()


def _error(code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        "<RequestId>modelship-test</RequestId>"
        "</ErrorResponse>"
    ).encode()


class Sts:
    """Exchanges `token` for `issued` when asked for `role_arn`; `calls` holds every request. A wrong token
    is InvalidIdentityToken (400), a wrong role AccessDenied (403), as AWS answers them."""

    def __init__(self, certificate: Path, key: Path, token: str, role_arn: str, issued: Issued) -> None:
        self.calls: list[Call] = []
        sts = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                params.update(urllib.parse.parse_qsl(body))
                sts.calls.append(Call(self.command, params))
                status, answer = sts.answer(params)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.token, self.role_arn, self.issued = token, role_arn, issued
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, params: dict[str, str]) -> tuple[int, bytes]:
        if params.get("Action") != "AssumeRoleWithWebIdentity" or params.get("Version") != "2011-06-15":
            return 400, _error("InvalidAction", "Could not find operation for this Action and Version.")
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not params.get(name):
                return 400, _error("MissingParameter", f"The request must contain the parameter {name}.")
        if params["WebIdentityToken"] != self.token:
            return 400, _error(
                "InvalidIdentityToken",
                "The web identity token that was passed could not be validated by Amazon Web Services.",
            )
        if params["RoleArn"] != self.role_arn:
            return 403, _error("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        return 200, _success(self.issued)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
