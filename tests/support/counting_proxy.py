"""A counting proxy between one client (the operator or a controller under benchmark) and the apiserver.

The client gets a kubeconfig pointing at `http://127.0.0.1:<port>` with no credentials; the proxy
forwards each request to the real apiserver over TLS with the cluster's admin certificate, and
records what it was (verb as the audit log names it: get, list, watch, create, patch, update,
delete; the resource; the user agent). Watch streams are relayed line by line, which lets a test
cut the client off from events (`drop_watch_events`) and then expire every watch the way etcd
compaction does (`expire_watches`): open streams get a 410 Gone ERROR event, and a new watch from a
resourceVersion at or before the compaction point is answered with one.

It runs its own event loop on a thread, so a test drives it with plain calls.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

GONE = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version (compacted by the test proxy)",
        "reason": "Expired",
        "code": 410,
    },
}


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # plural, e.g. "pods", "modeldeployments", "modeldeployments/status"
    namespace: str | None
    user_agent: str


def classify(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str, str | None]:
    """(verb, resource, namespace) as the apiserver's audit log would name them; a request for no
    resource (/api, /apis/<group>/<version>, /version) is "discovery"."""
    parts = [p for p in path.split("/") if p]
    # /api/v1/... or /apis/group/version/...
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    named = len(rest) >= 2
    if len(rest) >= 3:
        resource = f"{rest[0]}/{rest[2]}"
    if not resource:
        verb = "discovery"
    elif method == "GET":
        watching = query.get("watch", ["false"])[0] in ("true", "1")
        verb = "watch" if watching else "get" if named else "list"
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method, method)
    return verb, resource, namespace


class ApiProxy:
    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.upstream = cluster["server"].rstrip("/")
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])
        self.requests: list[Request] = []
        self.port = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._dropping = False
        self._compacted_at: int | None = None
        self._streams: set[asyncio.Event] = set()  # one per open watch: set = send 410 and close
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-proxy", daemon=True)

    # -- driving it from a test --------------------------------------------------------------
    def start(self) -> ApiProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the API proxy did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "proxy", "user": {}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
                    "current-context": "proxy",
                }
            )
        )
        return path

    def mark(self) -> int:
        """A position in the request log: `since(mark)` counts what came after it."""
        with self._lock:
            return len(self.requests)

    def since(self, mark: int = 0) -> list[Request]:
        with self._lock:
            return list(self.requests[mark:])

    def verbs(self, mark: int = 0) -> Counter[str]:
        return Counter(r.verb for r in self.since(mark))

    def drop_watch_events(self) -> None:
        """From now on, events on open watches are read from the apiserver and thrown away."""
        self._dropping = True

    def expire_watches(self) -> None:
        """Compaction: every open watch ends with 410 Gone, and so does any new watch from a
        resourceVersion the apiserver had reached by now. Events flow again for new streams."""
        future = asyncio.run_coroutine_threadsafe(self._expire(), self._loop)
        future.result(30)

    # -- the proxy itself ----------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        self._session = ClientSession(
            connector=TCPConnector(ssl=self.ssl, limit=0), timeout=ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()

    async def _shutdown(self) -> None:
        for stream in list(self._streams):  # open watches end now, not at their timeout
            stream.set()
        await self._runner.cleanup()
        await self._session.close()

    async def _current_version(self) -> int:
        async with self._session.get(f"{self.upstream}/api/v1/namespaces?limit=1") as resp:
            return int((await resp.json())["metadata"]["resourceVersion"])

    async def _expire(self) -> None:
        self._compacted_at = await self._current_version()
        for stream in list(self._streams):
            stream.set()
        self._dropping = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = parse_qs(urlsplit(str(request.rel_url)).query)
        verb, resource, namespace = classify(request.method, request.path, query)
        with self._lock:
            self.requests.append(Request(verb, resource, namespace, request.headers.get("User-Agent", "")))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")
        }
        body = await request.read()
        if verb == "watch":
            since = query.get("resourceVersion", [""])[0]
            if self._compacted_at is not None and since.isdigit() and int(since) <= self._compacted_at:
                return await self._gone(request)
        upstream = await self._session.request(
            request.method, f"{self.upstream}{request.rel_url}", headers=headers, data=body or None
        )
        if verb != "watch" or upstream.status != 200:
            async with upstream:
                payload = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=payload,
                headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
            )
        return await self._relay(request, upstream)

    async def _gone(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(json.dumps(GONE).encode() + b"\n")
        await response.write_eof()
        return response

    async def _relay(self, request: web.Request, upstream: Any) -> web.StreamResponse:
        # Go clients watch in protobuf: the stream keeps the apiserver's content type.
        kind = upstream.headers.get("Content-Type", "application/json")
        response = web.StreamResponse(status=200, headers={"Content-Type": kind})
        await response.prepare(request)
        expired = asyncio.Event()
        self._streams.add(expired)
        lines = asyncio.ensure_future(self._pump(upstream, response, binary="json" not in kind))
        ended = asyncio.ensure_future(expired.wait())
        try:
            await asyncio.wait({lines, ended}, return_when=asyncio.FIRST_COMPLETED)
            if expired.is_set():
                lines.cancel()
                await response.write(json.dumps(GONE).encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away
        finally:
            self._streams.discard(expired)
            ended.cancel()
            lines.cancel()
            upstream.release()
        return response

    async def _pump(self, upstream: Any, response: web.StreamResponse, binary: bool = False) -> None:
        while True:
            # A protobuf watch is length-prefixed frames, not lines: waiting for a newline held each
            # event back until some later frame happened to hold a 0x0A byte (Argo Rollouts saw its
            # events up to a minute late). Binary streams are relayed as they arrive.
            line = await (upstream.content.readany() if binary else upstream.content.readline())
            if not line:
                return
            if not self._dropping:
                await response.write(line)
