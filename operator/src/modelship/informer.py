"""Keeps one kind of object, in one namespace or cluster-wide, flowing into a sink: list, then watch.

An `Informer` lists the objects its label selector picks out on the server side (so the apiserver
never sends the operator a pod it does not own), hands the whole list to the sink, then watches
from the list's resourceVersion with bookmarks on. A watch that ends (the server's timeout, a
dropped connection) resumes from the last resourceVersion seen, bookmarks included, so a quiet
cluster costs one request per watch timeout and no relist. When the apiserver answers 410 Gone (the
version fell out of its window, or etcd was compacted) the informer lists again and hands over the
new list whole: the sink replaces what it held, so an object deleted while nobody watched goes too.

It runs on a thread of its own because the Kubernetes client blocks; the sink must be safe to call
from that thread (the child cache posts everything to the event loop). Objects pass through
`transform` before they leave the thread, so only what decisions read is kept in memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)
Obj = dict[str, Any]
LIST_CHUNK = 500  # objects per list page: bounds the apiserver's and our memory spike


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str

    def path(self, namespace: str | None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        scope = f"/namespaces/{quote(namespace)}" if namespace else ""
        return f"{root}{scope}/{self.plural}"


class Sink(Protocol):
    def replace(self, resource: Resource, namespace: str | None, items: list[Obj]) -> None:
        """A fresh list: everything of this kind in this scope, nothing else."""

    def upsert(self, resource: Resource, obj: Obj) -> None: ...

    def delete(self, resource: Resource, obj: Obj) -> None: ...

    def absent(self, resource: Resource, namespace: str | None) -> None:
        """The apiserver does not serve this kind (a cluster without the Gateway API): there will
        never be any, and waiting for a list would wait forever."""


class Expired(Exception):
    """410 Gone: the resourceVersion we would resume from is no longer served; list again."""


@dataclass
class WatchTimeouts:
    server: int = 300  # the apiserver ends each watch after this long (it also sends a bookmark)
    client: int = 330  # a connection silent for this long is dead (a dropped network path)
    connect: int = 30
    backoff_min: float = 0.5
    backoff_max: float = 30.0


class Informer:
    def __init__(
        self,
        api_client: client.ApiClient,
        resource: Resource,
        namespace: str | None,
        label_selector: str,
        sink: Sink,
        transform: Callable[[Obj], Obj] = lambda obj: obj,
        timeouts: WatchTimeouts | None = None,
    ) -> None:
        self.api_client = api_client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.sink = sink
        self.transform = transform
        self.timeouts = timeouts or WatchTimeouts()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._version = ""  # the last resourceVersion seen: of the list, then of each watch event

    def start(self) -> None:
        where = self.namespace or "all-namespaces"
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{self.resource.plural}-{where}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops after the current request ends (at most the watch's server timeout); the thread
        is a daemon, so a process that exits does not wait for it."""
        self._stop.set()

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._version = self._list()
            except ApiException as exc:
                if exc.status == 404:
                    log.info("%s is not served by this cluster; not watching it", self.resource.plural)
                    self.sink.absent(self.resource, self.namespace)
                    return
                failures = self._backoff(failures, "list", exc)
                continue
            except Exception as exc:  # a dropped connection, a timeout: try again, slower each time
                failures = self._backoff(failures, "list", exc)
                continue
            failures = 0
            while not self._stop.is_set():
                try:
                    self._watch()
                    failures = 0
                except Expired:
                    log.debug("%s: watch expired (410 Gone); listing again", self.resource.plural)
                    break
                except Exception as exc:
                    failures = self._backoff(failures, "watch", exc)

    def _backoff(self, failures: int, what: str, exc: Exception) -> int:
        delay = min(self.timeouts.backoff_max, self.timeouts.backoff_min * 2**failures)
        log.warning("%s %s failed (%s); again in %.1fs", self.resource.plural, what, _brief(exc), delay)
        self._stop.wait(delay)
        return failures + 1

    def _list(self) -> str:
        items: list[Obj] = []
        params = [("labelSelector", self.label_selector), ("limit", str(LIST_CHUNK))]
        token = ""
        while True:
            page = json.loads(self._get([*params, *([("continue", token)] if token else [])]).data)
            items.extend(self.transform(obj) for obj in page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                self.sink.replace(self.resource, self.namespace, items)
                return str(meta.get("resourceVersion") or "")

    def _watch(self) -> None:
        """One watch request, from the last version seen. Every event handed to the sink moves that
        version on at once, so a watch that fails part-way (a silent connection timed out, a
        dropped one) resumes after its last event: resuming from where it began would replay
        events the sink already has, and take the cache back to older states meanwhile."""
        params = [
            ("labelSelector", self.label_selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self._version),
            ("timeoutSeconds", str(self.timeouts.server)),
        ]
        response = self._get(params, stream=True)
        try:
            for event in _events(response):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired()
                    raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                if kind == "DELETED":
                    self.sink.delete(self.resource, self.transform(obj))
                elif kind in ("ADDED", "MODIFIED"):
                    self.sink.upsert(self.resource, self.transform(obj))
                self._version = str((obj.get("metadata") or {}).get("resourceVersion") or self._version)
                if self._stop.is_set():
                    break
        finally:
            response.release_conn()

    def _get(self, params: list[tuple[str, str]], stream: bool = False) -> Any:
        method, url, headers, body, post = self.api_client.param_serialize(
            "GET",
            self.resource.path(self.namespace),
            query_params=params,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        read = self.timeouts.client if stream else 60
        response = self.api_client.call_api(
            method, url, headers, body, post, _request_timeout=(self.timeouts.connect, read)
        )
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            if response.status == 410:
                raise Expired()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if stream:
            return response.response
        response.read()  # type: ignore[no-untyped-call]
        return response


def _events(response: Any) -> Iterator[Obj]:
    for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
        if line.strip():
            yield cast(Obj, json.loads(line))


def _brief(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"[:200]
