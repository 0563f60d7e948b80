"""A proxy between one operator process and the apiserver that can misbehave on purpose.

The operator's kubeconfig points at it; it terminates TLS with the cluster's own serving
certificate (its SANs include 127.0.0.1) and talks to the apiserver with the cluster's client
certificate, so it sees each HTTP request: it counts them (the "no write storm" check) and can

- pass everything (the default);
- drop: forward nothing in either direction and connect nothing new, as a network partition
  does; when it ends, what was queued flows on (a partition shorter than TCP's timeouts);
- hold watches: every watch stream open now (and, with `new_too`, every one opened later) stays
  open and delivers nothing more, ever: the "watch that goes silent without closing";
- answer 429 (Too Many Requests, Retry-After: 1), as API Priority and Fairness does when the
  operator's priority level is full, or 409 (Conflict) to writes, as the apiserver does when
  another writer got there first;
- lose an answer: forward one chosen write, which the apiserver stores, but answer the client 504
  (Timeout), and silence every watch from then on, as an apiserver does whose etcd is frozen after
  it took the write: the operator neither hears that its write landed nor sees it in a watch.

Only this operator's traffic goes through it, so it is safe on the shared cluster. Requests are
HTTP/1.1 with a Content-Length body (the Kubernetes clients never send chunked requests), and a
client sends the next request on a connection only after the previous answer, so an answer the
proxy makes up never interleaves with one from the apiserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic()
    method: str
    path: str
    watch: bool
    answered: int | None  # the status the proxy made up, None when forwarded


@dataclass
class LostAnswer:
    """The write whose answer the proxy lost: which one matched, and what the apiserver answered."""

    match: Callable[[str, str, bytes], bool]  # (method, path, body) -> lose this one's answer
    path: str = ""
    body: bytes = b""
    stored: int | None = None  # the apiserver's real status code, once the write reached it


@dataclass(eq=False)  # one per connection, kept in a set by identity
class _Connection:
    watch: bool = False
    held: bool = False


@dataclass
class FaultProxy:
    upstream: str  # https://127.0.0.1:PORT
    pki: Path  # the cluster's pki directory: ca.crt, admin.crt, admin.key
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _passing: asyncio.Event | None = None
    _connections: set[_Connection] = field(default_factory=set)
    _hold_new_watches: bool = False
    _answer_all: int | None = None
    _answer_writes: int | None = None
    _lose: LostAnswer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="api-proxy")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the API proxy did not start")
        return self

    def stop(self) -> None:
        """Closes every connection and waits for that, so that no task of the proxy is left for the
        garbage collector to finalise at some random later moment of the test run."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the operator that goes through this proxy."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "proxied",
                    "cluster": {
                        "server": f"https://127.0.0.1:{self.port}",
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "proxied",
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "proxied", "context": {"cluster": "proxied", "user": "proxied"}}],
            "current-context": "proxied",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- faults (called from the test's thread) --------------------------------------------------
    @contextlib.contextmanager
    def dropping(self) -> Iterator[None]:
        """A partition for as long as the block runs."""
        self._call(lambda: self._passing.clear() if self._passing else None)
        try:
            yield
        finally:
            self._call(lambda: self._passing.set() if self._passing else None)

    @contextlib.contextmanager
    def holding_watches(self, new_too: bool = False) -> Iterator[None]:
        """Silences every open watch for good; with `new_too`, watches opened during the block as well."""

        def hold() -> None:
            self._hold_new_watches = new_too
            for conn in self._connections:
                conn.held = conn.held or conn.watch

        self._call(hold)
        try:
            yield
        finally:
            self._call(lambda: setattr(self, "_hold_new_watches", False))

    @contextlib.contextmanager
    def answering(self, status: int, writes_only: bool = False) -> Iterator[None]:
        """Answers `status` itself (429, 409) to every request, or every write, during the block."""
        attr = "_answer_writes" if writes_only else "_answer_all"
        self._call(lambda: setattr(self, attr, status))
        try:
            yield
        finally:
            self._call(lambda: setattr(self, attr, None))

    @contextlib.contextmanager
    def losing_answer(self, to: Callable[[str, str, bytes], bool]) -> Iterator[LostAnswer]:
        """Loses the answer to the first write `to` matches (see the module's doc). Watches open then
        stay silent for good; watches opened later are silent until the block ends."""
        lost = LostAnswer(to)
        self._call(lambda: setattr(self, "_lose", lost))
        try:
            yield lost
        finally:

            def end() -> None:
                self._lose = None
                self._hold_new_watches = False

            self._call(end)

    @staticmethod
    def status_write(method: str, path: str, body: bytes) -> bool:
        """Any status write of a ModelDeployment: a `losing_answer` target."""
        return method == "PATCH" and path.split("?")[0].endswith("/status") and "/modeldeployments/" in path

    def writes_between(self, start: float, end: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method in WRITES and start <= r.at <= end]

    def forwarded_since(self, start: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.at >= start and r.answered is None]

    # -- the proxy --------------------------------------------------------------------------------
    def _call(self, fn: Any) -> None:
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._passing = asyncio.Event()
        self._passing.set()
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=serving))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:  # gather() of nothing would look for a loop of this thread's own, and find none
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        assert self._passing is not None
        await self._passing.wait()  # a partition: the connection hangs
        try:
            up_r, up_w = await self._open_upstream()
        except OSError:
            client_w.close()
            return
        conn = _Connection()
        self._connections.add(conn)
        tasks = [
            asyncio.ensure_future(self._requests(client_r, client_w, up_w, conn)),
            asyncio.ensure_future(self._responses(up_r, client_w, conn)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            self._connections.discard(conn)
            for writer in (client_w, up_w):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        target = urlsplit(self.upstream)
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        return await asyncio.open_connection(target.hostname, target.port, ssl=context)

    async def _requests(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_w: asyncio.StreamWriter,
        conn: _Connection,
    ) -> None:
        assert self._passing is not None
        while True:
            try:
                head = await client_r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await client_r.readexactly(length) if length else b""
            await self._passing.wait()
            watch = "watch=true" in path or "watch=1" in path
            lose = self._lose
            if lose is not None and not lose.body and method in WRITES and lose.match(method, path, body):
                lose.path, lose.body = path, body
                with self._lock:
                    self.requests.append(Request(time.monotonic(), method, path, watch, 504))
                await self._store_unanswered(head, body, lose, client_w)
                continue
            answer = self._answer_all or (self._answer_writes if method in WRITES else None)
            with self._lock:
                self.requests.append(Request(time.monotonic(), method, path, watch, answer))
            if answer is not None:
                client_w.write(_status_response(answer))
                await client_w.drain()
                continue
            conn.watch = watch
            conn.held = watch and self._hold_new_watches
            up_w.write(head + body)
            await up_w.drain()

    async def _store_unanswered(
        self, head: bytes, body: bytes, lose: LostAnswer, client_w: asyncio.StreamWriter
    ) -> None:
        """Sends the write on a connection of its own, reads the apiserver's whole answer there, then
        silences the watches and answers the client 504 instead."""
        lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
        up_r, up_w = await self._open_upstream()
        up_w.write(b"\r\n".join([*lines, b"Connection: close", b"", b""]) + body)
        await up_w.drain()
        answer = await up_r.read()  # to the end: the apiserver closes after a Connection: close answer
        up_w.close()
        lose.stored = int(answer.split(b" ", 2)[1])
        self._hold_new_watches = True
        for conn in self._connections:
            conn.held = conn.held or conn.watch
        client_w.write(_status_response(504))
        await client_w.drain()

    async def _responses(
        self, up_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        assert self._passing is not None
        while True:
            data = await up_r.read(65536)
            if not data:
                return
            await self._passing.wait()
            if conn.held:
                continue  # silent, but open
            client_w.write(data)
            await client_w.drain()


_REASONS = {
    409: ("Conflict", "Conflict"),
    429: ("Too Many Requests", "TooManyRequests"),
    504: ("Gateway Timeout", "Timeout"),
}


def _status_response(code: int) -> bytes:
    phrase, reason = _REASONS.get(code, ("Error", "InternalError"))
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"injected by the test's API proxy: {phrase}",
            "reason": reason,
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {code} {phrase}\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
