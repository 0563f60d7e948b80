"""HTTP/1.1 on asyncio with the httptools parser (llhttp, Node.js's parser).

Chosen over uvicorn and granian by measurement (bench/serving/RESULTS.md): without ASGI's per-request
task, scope dict and receive/send coroutines, a one-row request cost markedly less. Re-measured with the
limits below in, on a loaded machine, it was not clearly ahead at 64 connections; the choice waits for a
quiet re-run (RESULTS.md, "The HTTP stack re-measured after the hardening").

What it does: keep-alive and pipelining (responses leave in request order), chunked request bodies,
``Expect: 100-continue``, write back-pressure, and draining: after ``drain()`` starts, no new connection
is accepted, busy ones close after an answer that says ``connection: close``, and idle ones once they
have been idle for a second.

What a hostile client meets (``Limits``, all enforced as bytes arrive, see serving_image/README.md): a
byte budget for the request head (431), a deadline for the head and one for the body (408, then close),
an idle timeout that only a complete request resets, a bound on pipelined requests per parsed request
(the parser stops, the rest of the read waits until answers drain), ``100 Continue`` only once the
request is next to be answered, a connection cap per worker (503), and llhttp's strict framing (no
CL+TE, duplicate Content-Length, obs-fold, bare CR/LF) plus our own refusals (transfer codings other
than chunked, Transfer-Encoding in HTTP/1.0, HTTP/0.9 and HTTP/2 request lines).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import resource
import socket
import time
from collections import deque
from http import HTTPStatus
from typing import cast

import httptools

from modelship_server.app import App, Request, Response, error_response
from modelship_server.errors import StartupError
from modelship_server.limits import Limits

log = logging.getLogger(__name__)
access_log = logging.getLogger("modelship_server.access")

_STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}
# Written to a connection beyond the cap before closing it: a proxy retries elsewhere on 503.
_REFUSED_BODY = b'{"error":"too many connections to this server"}'
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_REFUSED_BODY), _REFUSED_BODY)
)
# The shortest request llhttp accepts ("GET / HTTP/1.1\r\n\r\n" is 18 bytes): a read shorter than
# room * this cannot hold more requests than the pipelining bound has room for.
_MIN_REQUEST_BYTES = 16
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# After its last answer a connection half-closes and reads (discarding) until the client closes too, so a
# client still sending gets that answer instead of a reset; at most this long and this much.
_LINGER_S = 2.0
# Draining closes a keep-alive connection only once it has sat idle this long. A client that sends
# more often gets `connection: close` on an answer instead, so it never sends on a connection the
# server is closing at that instant (a reset, a failed request); a pooled connection idle for a second
# is one a client checks before it reuses it.
_DRAIN_IDLE_S = 1.0
_LINGER_BYTES = 1024 * 1024

# Where a connection is in its current request.
_IDLE, _HEAD, _BODY = 0, 1, 2


class _Reject(Exception):
    """Stop parsing this connection: answer with ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    def __init__(self, app: App, *, limits: Limits, access_log: bool) -> None:
        self.app = app
        self.limits = limits
        self.access_log = access_log
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.refused = 0
        self.fixed_headers = b""
        self._version_header = f"modelship-model-version: {app.model_version}\r\n".encode("latin-1")
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()
        # Deadlines are checked by one sweep, not a timer per request: often enough that the shortest
        # timeout is kept to within a quarter of itself, and at least once a second (the Date header).
        self._tick_s = max(
            0.05, min(1.0, limits.header_timeout_s / 4, limits.body_timeout_s / 4, limits.keepalive_timeout_s)
        )
        self._date_at = -math.inf
        self._tick()

    async def start(self, sock: socket.socket) -> None:
        _allow_descriptors(self.limits.max_connections)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpConnection(self), sock=sock, backlog=2048)

    def _tick(self) -> None:
        """Refresh the Date header once a second; close connections past their deadline."""
        loop = asyncio.get_event_loop()
        now = loop.time()
        if now - self._date_at >= 1.0:
            self._date_at = now
            self.fixed_headers = (
                b"date: "
                + email.utils.formatdate(usegmt=True).encode()
                + b"\r\n"
                + b"server: modelship\r\n"
                + self._version_header
            )
        for connection in list(self.connections):
            if connection.write_paused and now >= connection.stall_deadline:
                connection.abort()  # the client stopped taking its answers
            elif now >= connection.deadline:
                connection.expire(now)
            elif self.draining and connection.is_idle() and now - connection.idle_since >= _DRAIN_IDLE_S:
                connection.close()
        if self.refused:
            log.warning(
                "connection cap reached; refused connections",
                extra={"refused": self.refused, "max_connections": self.limits.max_connections},
            )
            self.refused = 0
        self._ticker = loop.call_later(self._tick_s, self._tick)

    def forget(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        if self.draining and not self.connections:
            self._drained.set()

    async def drain(self, timeout_s: float) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout_s``), then close everything."""
        self.draining = True
        if self._server is not None:
            self._server.close()
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


def _allow_descriptors(connections: int) -> None:
    """Raise the soft open-files limit so the connection cap, not EMFILE, is what refuses connections
    (on EMFILE the accept loop stalls, which is the wedge the cap exists to prevent)."""
    wanted = connections + 256  # the listening socket, the model's files, logs, metrics, helper threads
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if new_soft < wanted:
            log.warning(
                "the open-files limit is below the connection cap",
                extra={"max_connections": connections, "nofile": new_soft},
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
        self.limits = server.limits
        self.parser = httptools.HttpRequestParser(self)
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.slots: deque[_Slot] = deque()
        self.phase = _IDLE
        self.requests = 0  # complete requests parsed on this connection
        # When the current wait ends (head, body or idle, by phase); the server's tick acts on it.
        self.deadline = math.inf
        self.idle_since = self.loop.time()
        self.stall_deadline = math.inf
        self.closing = False  # nothing more is parsed; close after the answers already queued
        self.eof = False  # the client will send nothing more
        self.read_paused = False
        self.write_paused = False
        # Received but not yet parsed: the pipelining bound stopped the parser part-way through a read.
        self._pending = b""
        self._feeding = False
        self._resume_scheduled = False
        self._discarded = 0
        self._url: list[bytes] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_bytes = 0  # bytes of the reads that arrived while this head was open
        self._line_bytes = 0  # bytes of the head's complete lines, as the parser reports them
        self._body_wire_bytes = 0
        self._header_length: int | None = None
        self._expect_continue = False
        self._continue_owed = False
        self._chunked = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        if server.draining or len(server.connections) >= self.limits.max_connections:
            if not server.draining:
                server.refused += 1
                self.transport.write(_REFUSED)
            self.closing = True
            self.transport.close()
            return
        server.connections.add(self)
        # A new connection must send its first request head promptly; it is not yet a keep-alive one.
        self.deadline = self.loop.time() + self.limits.header_timeout_s

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.slots.clear()
        self._pending = b""
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            self._discarded += len(data)
            if self._discarded > _LINGER_BYTES:
                self.abort()
            return
        if self._pending:
            # Reading was paused with a read still on its way: it waits behind the rest.
            self._pending += data
            return
        self._feed(data)

    def eof_received(self) -> bool | None:
        # The client finished sending: answer what it asked, then close.
        self.eof = True
        if self.closing or (not self.slots and not self._pending):
            self.close()
            return None
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self.stall_deadline = self.loop.time() + self.limits.body_timeout_s
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.stall_deadline = math.inf
        self._update_reading()

    # -- feeding the parser --------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` in pieces small enough that every limit holds at the byte where it is reached."""
        limits = self.limits
        view = memoryview(data)
        start, end = 0, len(data)
        self._feeding = True
        try:
            while start < end and not self.closing:
                if len(self.slots) >= limits.max_pipelined or self.write_paused:
                    self._pending = bytes(view[start:])
                    break
                stop = end
                head_open = self.phase != _BODY
                if head_open:
                    # Never hand the parser more of a head than its budget has room for.
                    stop = min(stop, start + limits.max_header_bytes - self._head_bytes)
                room = limits.max_pipelined - len(self.slots)
                if stop - start >= room * _MIN_REQUEST_BYTES:
                    # This piece may hold more requests than there is room for: parse up to the end of the
                    # next head, so at most one more request completes before the bound is checked again.
                    cut = data.find(b"\r\n\r\n", start, stop)
                    if cut != -1:
                        stop = cut + 4
                requests_before = self.requests
                self.parser.feed_data(view[start:stop])
                fed = stop - start
                start = stop
                if self.requests != requests_before or self.closing:
                    # A request completed in this piece: the next one's head, if it began here, is charged
                    # from the next piece on (its part here is at most one piece).
                    continue
                if head_open and self.phase != _BODY:
                    self._head_bytes += fed
                    if self._head_bytes >= limits.max_header_bytes:
                        raise _Reject(431, "the request line and headers are too large")
                elif not head_open and self.phase == _BODY:
                    # Chunk sizes, extensions and trailers are not body bytes but still cost: bounded too.
                    self._body_wire_bytes += fed
                    if self._body_wire_bytes > limits.max_body_bytes + limits.max_header_bytes:
                        raise _Reject(413, f"the request body is larger than {limits.max_body_bytes} bytes")
        except _Reject as rejected:
            self._reject(rejected.status, rejected.message)
        except httptools.HttpParserUpgrade:
            # The request asking for it is complete and being answered as plain HTTP (RFC 9110 lets a
            # server ignore Upgrade; CONNECT gets its 4xx from the app): what follows it is not HTTP.
            self._close_after_answers()
        except httptools.HttpParserError as error:
            cause = error.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.message)
            elif "PRI/Upgrade" in str(error):
                self._reject(400, "HTTP/2 is not supported: use HTTP/1.1")
            else:
                self._reject(400, f"malformed HTTP request: {' '.join(str(error).split()) or 'parse error'}")
        finally:
            self._feeding = False
        self._update_reading()

    def _feed_pending(self) -> None:
        self._resume_scheduled = False
        if self.closing or not self._pending or self.write_paused:
            return
        if len(self.slots) >= self.limits.max_pipelined:
            return
        data, self._pending = self._pending, b""
        self._feed(data)
        if self.eof and not self.slots and not self._pending:
            self.close()

    # -- httptools callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.phase = _HEAD
        if self.requests:
            # A keep-alive request: its head is timed from its first byte (a first request's from connect).
            self.deadline = self.loop.time() + self.limits.header_timeout_s
        self._url = []
        self._body = []
        self._body_size = 0
        self._head_bytes = 0
        self._line_bytes = 0
        self._body_wire_bytes = 0
        self._header_length = None
        self._expect_continue = False
        self._continue_owed = False
        self._chunked = False

    def on_url(self, url: bytes) -> None:
        self._line_bytes += len(url)
        if self._line_bytes >= self.limits.max_header_bytes:
            raise _Reject(431, "the request line and headers are too large")
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called once a header line is complete. This count covers a head that began part-way through a
        # read (which the per-read count charges only from the next read on).
        self._line_bytes += len(name) + len(value)
        if self._line_bytes >= self.limits.max_header_bytes:
            raise _Reject(431, "the request line and headers are too large")
        lowered = name.lower()
        if lowered == b"content-length":
            max_body = self.limits.max_body_bytes
            if value.strip().isdigit() and int(value) > max_body:
                raise _Reject(413, f"the request body is larger than {max_body} bytes")
        elif lowered == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise _Reject(501, "only the chunked transfer coding is supported")
            self._chunked = True
        elif lowered == b"inference-header-content-length":
            if not value.strip().isdigit():
                raise _Reject(400, "Inference-Header-Content-Length must be a non-negative integer")
            self._header_length = int(value)
        elif lowered == b"expect":
            self._expect_continue = value.strip().lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        if self.phase != _HEAD:
            return  # a chunked body's trailer section, not a new head
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Reject(505 if version.startswith("2") else 400, f"HTTP/{version} is not supported")
        if self._chunked and version == "1.0":
            # RFC 9112 6.1: such framing is faulty; a proxy in front may have read the body differently.
            raise _Reject(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
        self.phase = _BODY
        self.deadline = self.loop.time() + self.limits.body_timeout_s
        if self._expect_continue:
            if self.slots:
                # Earlier pipelined answers are still owed: 100 Continue must not overtake them.
                self._continue_owed = True
            elif self.transport is not None:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._continue_owed = False  # the client did not wait for it
        self._body_size += len(body)
        if self._body_size > self.limits.max_body_bytes:
            raise _Reject(413, f"the request body is larger than {self.limits.max_body_bytes} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.phase = _IDLE
        self.requests += 1
        self._head_bytes = 0
        self._continue_owed = False
        self.deadline = math.inf  # waiting for our answer; the idle clock starts once it is written
        parser = self.parser
        method = parser.get_method().decode("latin-1")
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        path = url.split(b"?", 1)[0].decode("utf-8", "replace")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        slot = _Slot(method, path, parser.should_keep_alive(), parser.get_http_version() == "1.0")
        self.slots.append(slot)

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
                (self.eof or self.closing or self.server.draining)
                and not slots
                and self.phase == _IDLE
                and not self._pending
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
                self._finish()
                return
        if slots:
            return
        if self.phase == _IDLE:
            # Nothing in progress: the idle clock starts now, and only a complete request resets it.
            self.idle_since = self.loop.time()
            self.deadline = self.idle_since + self.limits.keepalive_timeout_s
        elif self._continue_owed and self.phase == _BODY:
            self._continue_owed = False
            transport.write(_CONTINUE)
        if self.eof and not self._pending:
            self.close()
        elif self.closing:
            self._finish()
        else:
            self._update_reading()

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed further, after any answers it queued behind, then close."""
        slot = _Slot("ERROR", "", keep_alive=False, http_10=False)
        slot.response = error_response(status, message)
        self.slots.append(slot)
        self.closing = True
        self.phase = _IDLE
        self._pending = b""
        # The client has this long to take the answer before the connection is reset.
        self.deadline = self.loop.time() + self.limits.body_timeout_s
        if self.slots[0] is slot:
            self._write_ready()

    def _close_after_answers(self) -> None:
        """Read nothing more: answer the requests already parsed, then close."""
        self.closing = True
        self.phase = _IDLE
        self._pending = b""
        self.deadline = self.loop.time() + self.limits.body_timeout_s
        if not self.slots:
            self._finish()

    def expire(self, now: float) -> None:
        """The current wait is over: a late head or body gets 408; an idle or stuck connection goes."""
        if self.closing or (self.phase == _IDLE and not self.slots):
            self.abort() if self._unsent() else self.close()
            return
        if self.phase == _IDLE:
            self.deadline = math.inf  # waiting for our answer
            return
        part, timeout = (
            ("head", self.limits.header_timeout_s)
            if self.phase == _HEAD
            else ("body", self.limits.body_timeout_s)
        )
        self._reject(408, f"the request {part} did not arrive within {timeout:g} s")

    def _unsent(self) -> bool:
        return self.transport is not None and self.transport.get_write_buffer_size() > 0

    def _update_reading(self) -> None:
        transport = self.transport
        if self._feeding or transport is None or transport.is_closing():
            return
        full = len(self.slots) >= self.limits.max_pipelined
        if self._pending and not full and not self.write_paused and not self._resume_scheduled:
            # Parse the rest of the read on the next loop turn: not from inside a batch's deliveries, and
            # after other connections have had their turn.
            self._resume_scheduled = True
            self.loop.call_soon(self._feed_pending)
        should_pause = self.write_paused or full or bool(self._pending)
        if should_pause and not self.read_paused:
            transport.pause_reading()
            self.read_paused = True
        elif not should_pause and self.read_paused:
            transport.resume_reading()
            self.read_paused = False

    # -- lifecycle -----------------------------------------------------------------------------------

    def is_idle(self) -> bool:
        """No request being received and none waiting for its answer."""
        return self.phase == _IDLE and not self.slots and not self._pending

    def _finish(self) -> None:
        """Close after the last answer: half-close, and read on until the client closes (lingering)."""
        self.closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.deadline = self.loop.time() + _LINGER_S
        if self.read_paused:
            transport.resume_reading()
            self.read_paused = False

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
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
