"""Runs reconciles: one at a time per ModelDeployment, coalescing bursts, waking up on schedule.

Watch events for a ModelDeployment and for its children all land in `request()`. A request for
an object already being reconciled only marks it dirty, so a burst of pod events costs one more
pass, not one pass each. The pure core may ask to be woken at a time (a pause ends, a deadline
passes); a timer per object does that, and is rebuilt from status after a restart.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelship import api, metrics, prometheus
from modelship.child_cache import ChildCache
from modelship.cluster import Cluster
from modelship.engine import Event, Measured, due, reconcile, refused
from modelship.informer import WatchTimeouts
from modelship.latest import LatestBodies
from modelship.ratelimit import PerKeyBuckets
from modelship.settings import Settings

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)
P = ParamSpec("P")
R = TypeVar("R")

# After an error, retry with exponential backoff between these bounds (seconds).
RETRY_MIN, RETRY_MAX = 1.0, 300.0
# Events per ModelDeployment: a burst of 25, then one per 5 minutes (client-go's spam filter), so a
# flapping object cannot flood the apiserver with them.
EVENT_BURST, EVENT_RATE = 25, 1 / 300


class StatusConflict(Exception):
    """The apiserver refused a status write (409): the object changed after the pass read it."""


def utc_now() -> datetime:
    # Whole seconds: status timestamps stay tidy and comparisons stable across round-trips.
    return datetime.now(UTC).replace(microsecond=0)


class Controller:
    def __init__(self, cluster: Cluster, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failing_since: dict[Key, float] = {}  # time.monotonic() of a failing streak's first
        # Objects whose last status write failed: it may have landed all the same (a timeout) or been
        # refused as stale (409), so the body in `bodies` may be older than what is stored.
        self._unsure: set[Key] = set()
        # What passes read instead of the apiserver: ModelDeployments as the watch (and our own
        # status writes) left them, and their children as the informers keep them.
        self.bodies = LatestBodies()
        self.children = ChildCache(settings.namespaces, self._child_changed)
        self._event_budget = PerKeyBuckets(EVENT_RATE, EVENT_BURST)
        self._tasks: set[asyncio.Future[None]] = set()
        # The Kubernetes client blocks, so its calls run on threads. `--max-workers` bounds how many
        # run at once: across every object, at most that many API calls are in flight.
        self._executor = ThreadPoolExecutor(settings.max_workers, thread_name_prefix="modelship-api")
        self.prometheus = prometheus.PrometheusClient(settings.prometheus_url)

    async def _io(self, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def start(self) -> None:
        """Starts the child informers; passes wait for their first lists (on the running loop)."""
        s = self.settings
        timeouts = WatchTimeouts(s.watch_server_timeout, s.watch_client_timeout, s.watch_connect_timeout)
        self.children.start(self.cluster.api_client, timeouts)

    def stop(self) -> None:
        self.children.stop()

    def seen(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """The watch delivered this body of a ModelDeployment (kopf's handler hands it over)."""
        self.bodies.seen((namespace, name), body)

    def _child_changed(self, namespace: str, name: str) -> None:
        task = asyncio.ensure_future(self.request(namespace, name))
        # The loop keeps only weak references to tasks: hold each until it is done.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        try:
            while True:
                self._dirty.discard(key)
                await self._reconcile_guarded(key)
                if key not in self._dirty:
                    break
        finally:
            self._running.discard(key)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        timer = self._timers.pop(key, None)
        if timer:
            timer.cancel()
        self._failing_since.pop(key, None)
        self._unsure.discard(key)
        self.bodies.forget(key)
        metrics.forget(namespace, name)

    async def _reconcile_guarded(self, key: Key) -> None:
        """One pass; an error is logged and retried later, never allowed to stop the operator."""
        started = time.monotonic()
        try:
            await self._reconcile(key)
        except StatusConflict:
            # Decided from an older version than the stored one: decide again from that, at once
            # the first time; a streak of conflicts backs off like any failure.
            metrics.RECONCILES.labels(result="conflict").inc()
            log.info("%s/%s: changed since it was read; deciding again from what is stored", *key)
            if key in self._failing_since:
                self._retry_later(key)
            else:
                self._failing_since[key] = time.monotonic()
                self._dirty.add(key)
        except ValidationError as exc:
            # The apiserver's schema should make this impossible; if it happens (an object
            # stored under an older schema), say why and look again later rather than crash.
            metrics.RECONCILES.labels(result="invalid").inc()
            log.error("%s/%s: cannot parse: %s", *key, exc.errors()[:3])
            self._retry_later(key)
        except Exception as exc:
            if isinstance(exc, ApiException) and _names_gone(exc, key):
                # Deleted while the watch missed it (a 410 relist never says what vanished): the
                # children it applied belong to a uid that no longer exists and the garbage collector
                # takes them. Forgetting it ends the passes that their deletion would start again.
                metrics.RECONCILES.labels(result="gone").inc()
                log.info("%s/%s: gone from the apiserver; forgotten", *key)
                self.forget(*key)
                return
            metrics.RECONCILES.labels(result="error").inc()
            log.exception("%s/%s: reconcile failed; will retry", *key)
            self._retry_later(key)
        else:
            metrics.RECONCILES.labels(result="ok").inc()
            self._failing_since.pop(key, None)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    async def _reconcile(self, key: Key) -> None:
        namespace, name = key
        # Decide only from a synced view: an empty cache would read as "no Deployments".
        await self.children.wait_synced(namespace)
        if self.bodies.get(key) is None:  # deleted, or a child's event before the watch delivered its owner
            return
        if key in self._unsure:
            # Read what is stored before deciding: a step decided again from the state before a
            # write that landed unseen would begin again, its clock restarted (the watch that would
            # have said so may be as slow as the apiserver's answer was).
            self.bodies.wrote(key, await self._io(self.cluster.read, namespace, name))
            self._unsure.discard(key)
        raw = self.bodies.get(key)
        if raw is None:
            return
        md = api.ModelDeployment.model_validate(raw)
        observed = self.children.observe(md)
        assert observed is not None  # synced above; nothing un-syncs a cache
        now = self.clock()
        measured = await self._measure(md, now)
        plan = reconcile(md, observed, now, self.settings.default_serving_image, measured)
        try:
            await self._io(self.cluster.apply, md, plan)
        except ApiException as exc:
            message = _api_message(exc)
            # The apiserver answers 500 when server-side apply cannot convert a field; that too
            # is the object's fault, not the server's.
            if exc.status not in (400, 422) and "convert" not in message:
                raise
            # The spec produced an object the apiserver will not take: say so in status and
            # look again later; retrying at once cannot help until the spec changes.
            status = refused(md, plan.status, message, now)
            if await self._write_status(key, md, status):
                log.warning("%s/%s: %s", namespace, name, status.message)
                await self._post(md, [Event("Warning", "ChildRejected", status.message or "")], now)
            metrics.record_phase(namespace, name, status.phase)
            self._retry_later(key)
            return
        if await self._write_status(key, md, plan.status):
            log.info("%s/%s: %s: %s", namespace, name, plan.status.phase, plan.status.message)
        if plan.events:
            await self._post(md, plan.events, now)
            metrics.count_outcomes(plan.events)
        # Counted once status holds them: a pass that failed before this measures again.
        metrics.count_measurements(namespace, name, measured)
        metrics.record_phase(namespace, name, plan.status.phase)
        self._schedule(key, None if plan.wake_at is None else (plan.wake_at - now).total_seconds())

    async def _write_status(
        self, key: Key, md: api.ModelDeployment, status: api.ModelDeploymentStatus
    ) -> bool:
        """Writes status if it changed; True when it did. A failed write leaves the key unsure."""
        try:
            written = await self._io(self.cluster.write_status, md, status)
        except Exception as exc:
            self._unsure.add(key)
            if isinstance(exc, ApiException) and exc.status == 409:
                raise StatusConflict from exc
            raise
        if written is None:
            return False
        self.bodies.wrote(key, written)
        return True

    async def _measure(self, md: api.ModelDeployment, now: datetime) -> list[Measured]:
        """The analysis checks due now, measured at once; measure() never raises (a failed query is
        an Error measurement), so a Prometheus outage holds the rollout and never stops the pass."""
        dues = due(md, now)
        if not dues:
            return []
        results = await asyncio.gather(
            *(prometheus.measure(self.prometheus, d.check, d.target, now) for d in dues)
        )
        return [Measured(d.run, m) for d, m in zip(dues, results, strict=True)]

    async def _post(self, md: api.ModelDeployment, events: list[Event], now: datetime) -> None:
        allowed = [e for e in events if self._event_budget.allow(md.metadata.uid)]
        if len(allowed) < len(events):
            log.info(
                "%s/%s: %d events not posted (more than %d recently)",
                md.metadata.namespace,
                md.metadata.name,
                len(events) - len(allowed),
                EVENT_BURST,
            )
        if allowed:
            await self._io(self.cluster.post_events, md, allowed, now)

    def _retry_later(self, key: Key) -> None:
        # Back off by how long the object has been failing, not by how many passes failed: retries
        # alone still double (1, 1, 2, 4, ... s), but a short fault during which every child event
        # failed a pass must not push the next try minutes away (a 6 s 409 storm did: 300 s).
        now = time.monotonic()
        since = self._failing_since.setdefault(key, now)
        self._schedule(key, min(RETRY_MAX, max(RETRY_MIN, now - since)))

    def _schedule(self, key: Key, delay: float | None) -> None:
        old = self._timers.pop(key, None)
        if old:
            old.cancel()
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        # Rounded up to whole seconds (status time is whole seconds), plus a margin so the
        # wake-up lands after the moment it waits for, not just before it.
        delay = math.ceil(max(0.0, delay)) + 0.1
        self._timers[key] = loop.call_later(delay, lambda: asyncio.ensure_future(self.request(*key)))


def _names_gone(exc: ApiException, key: Key) -> bool:
    """A 404 about this very ModelDeployment (not a child, not its namespace)."""
    if exc.status != 404:
        return False
    try:
        details = json.loads(exc.body or "")["details"]
    except (TypeError, ValueError, KeyError):
        return False
    return bool(details.get("kind") == api.PLURAL and details.get("name") == key[1])


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
