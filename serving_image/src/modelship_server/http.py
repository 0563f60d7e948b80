"""HTTP/1.1 on asyncio with the httptools parser (llhttp, Node.js's parser).

Chosen over uvicorn and granian by measurement (bench/serving/RESULTS.md): without ASGI's per-request
task, scope dict and receive/send coroutines, a one-row request costs markedly less.

What it does: keep-alive and pipelining (responses leave in request order), chunked request bodies,
``Expect: 100-continue``, a body size limit (413) checked before the body is read, a header size limit
(431), an idle-connection timeout, write back-pressure, and draining: after ``drain()`` starts, idle
connections close, busy ones close after their last response, and no new connection is accepted.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from collections import deque
from http import HTTPStatus
from typing import cast

import httptools

from modelship_server.app import App, Request, Response, error_response
from modelship_server.errors import StartupError

log = logging.getLogger(__name__)
access_log = logging.getLogger("modelship_server.access")

MAX_HEADER_BYTES = 64 * 1024
# Pipelined requests a connection may have waiting before the server stops reading from it.
MAX_PIPELINED = 64

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}


class _Reject(Exception):
    """Stop parsing this connection: answer with ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    def __init__(
        self, app: App, *, max_body_bytes: int, keepalive_timeout_s: float, access_log: bool
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout_s = keepalive_timeout_s
        self.access_log = access_log
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.fixed_headers = b""
        self._version_header = f"modelship-model-version: {app.model_version}\r\n".encode("latin-1")
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()
        self._tick()

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpConnection(self), sock=sock, backlog=2048)

    def _tick(self) -> None:
        """Once a second: refresh the Date header, close connections idle past the keep-alive timeout."""
        self.fixed_headers = (
            b"date: "
            + email.utils.formatdate(usegmt=True).encode()
            + b"\r\n"
            + b"server: modelship\r\n"
            + self._version_header
        )
        loop = asyncio.get_event_loop()
        now = loop.time()
        for connection in list(self.connections):
            if connection.slots:
                continue  # waiting for our answer
            silent_for = now - connection.last_active
            # Idle between requests past the timeout (at once when draining), or stalled half-way through
            # sending a request for that long (a slow or stuck client must not hold a connection forever).
            if silent_for >= self.keepalive_timeout_s or (self.draining and not connection.in_message):
                connection.close()
        self._ticker = loop.call_later(1.0, self._tick)

    def forget(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        if self.draining and not self.connections:
            self._drained.set()

    async def drain(self, timeout_s: float) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout_s``), then close everything."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.is_idle():
                connection.close()
        if self.connections:
            try:
                await asyncio.wait_for(self._drained.wait(), timeout_s)
            except TimeoutError:
                log.warning(
                    "drain timed out; closing busy connections", extra={"connections": len(self.connections)}
                )
        for connection in list(self.connections):
            connection.abort()
        if self._ticker is not None:
            self._ticker.cancel()

    def head(self, response: Response, keep_alive: bool, http_10: bool) -> bytes:
        status_line = _STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} Unknown\r\n".encode()
        connection = (
            b""
            if keep_alive and not http_10
            else (b"connection: keep-alive\r\n" if keep_alive else b"connection: close\r\n")
        )
        return b"".join(
            (
                status_line,
                b"content-type: ",
                response.content_type,
                b"\r\ncontent-length: ",
                str(len(response.body)).encode(),
                b"\r\n",
                self.fixed_headers,
                response.headers,
                connection,
                b"\r\n",
            )
        )


class _Slot:
    """A request's place in its connection's response order."""

    __slots__ = ("http_10", "keep_alive", "method", "path", "response", "started")

    def __init__(self, method: str, path: str, keep_alive: bool, http_10: bool) -> None:
        self.method = method
        self.path = path
        self.keep_alive = keep_alive
        self.http_10 = http_10
        self.response: Response | None = None
        self.started = time.perf_counter()


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.slots: deque[_Slot] = deque()
        self.last_active = 0.0
        self.in_message = False
        self.closing = False
        self.read_paused = False
        self.write_paused = False
        self._url: list[bytes] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._header_bytes = 0
        self._header_length: int | None = None
        self._expect_continue = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.last_active = asyncio.get_event_loop().time()
        self.server.connections.add(self)
        if self.server.draining:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.slots.clear()
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = asyncio.get_event_loop().time()
        try:
            self.parser.feed_data(data)
        except _Reject as rejected:
            self._reject(rejected.status, rejected.message)
        except httptools.HttpParserUpgrade:
            self._reject(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            cause = error.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.message)
            else:
                self._reject(400, f"malformed HTTP request: {' '.join(str(error).split()) or 'parse error'}")

    def eof_received(self) -> bool | None:
        # The client finished sending: answer what it asked, then close.
        if not self.slots:
            self.close()
            return None
        self.closing = True
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()

    # -- httptools callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self._url = []
        self._body = []
        self._body_size = 0
        self._header_bytes = 0
        self._header_length = None
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _Reject(431, "the request line and headers are too large")
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _Reject(431, "the request line and headers are too large")
        lowered = name.lower()
        if lowered == b"content-length":
            if value.strip().isdigit() and int(value) > self.server.max_body_bytes:
                raise _Reject(413, f"the request body is larger than {self.server.max_body_bytes} bytes")
        elif lowered == b"inference-header-content-length":
            if not value.strip().isdigit():
                raise _Reject(400, "Inference-Header-Content-Length must be a non-negative integer")
            self._header_length = int(value)
        elif lowered == b"expect":
            self._expect_continue = value.strip().lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        if self._expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.server.max_body_bytes:
            raise _Reject(413, f"the request body is larger than {self.server.max_body_bytes} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        parser = self.parser
        method = parser.get_method().decode("latin-1")
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        path = url.split(b"?", 1)[0].decode("utf-8", "replace")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        slot = _Slot(method, path, parser.should_keep_alive(), parser.get_http_version() == "1.0")
        self.slots.append(slot)
        if len(self.slots) >= MAX_PIPELINED:
            self._update_reading()

        def respond(response: Response) -> None:
            slot.response = response
            if self.slots and self.slots[0] is slot:
                self._write_ready()

        self.app.handle(Request(method, path, body, self._header_length), respond)

    # -- writing -------------------------------------------------------------------------------------

    def _write_ready(self) -> None:
        """Write the responses at the head of the queue that are done, in request order."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        slots = self.slots
        while slots and slots[0].response is not None:
            slot = slots.popleft()
            response = slot.response
            assert response is not None
            # Close after this response when the client asked to, or when the connection is ending (the
            # client sent EOF, or the server drains) and no other request is queued or arriving.
            keep_alive = slot.keep_alive and not (
                (self.closing or self.server.draining) and not slots and not self.in_message
            )
            head = self.server.head(response, keep_alive, slot.http_10)
            if slot.method == "HEAD":
                transport.write(head)
            else:
                transport.write(head + response.body)
            if self.server.access_log:
                access_log.info(
                    "request",
                    extra={
                        "method": slot.method,
                        "path": slot.path,
                        "status": response.status,
                        "duration_ms": round((time.perf_counter() - slot.started) * 1000, 3),
                    },
                )
            if not keep_alive:
                self.close()
                return
        if self.closing and not slots:
            self.close()
        elif self.read_paused:
            self._update_reading()

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed further, after any answers it queued behind, then close."""
        slot = _Slot("ERROR", "", keep_alive=False, http_10=False)
        slot.response = error_response(status, message)
        self.slots.append(slot)
        self.closing = True
        self.in_message = False
        if self.slots[0] is slot:
            self._write_ready()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        should_pause = self.write_paused or len(self.slots) >= MAX_PIPELINED
        if should_pause and not self.read_paused:
            transport.pause_reading()
            self.read_paused = True
        elif not should_pause and self.read_paused:
            transport.resume_reading()
            self.read_paused = False

    # -- lifecycle -----------------------------------------------------------------------------------

    def is_idle(self) -> bool:
        """No request being received and none waiting for its answer."""
        return not self.in_message and not self.slots

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket; with ``reuse_port`` every worker has its own and the kernel spreads
    connections across them evenly (a shared socket lets one busy worker take most of them)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise StartupError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.setblocking(False)
    return sock
