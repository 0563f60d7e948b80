"""Measuring a canary, the I/O half: an async client for Prometheus' HTTP query API.

`measure()` never raises: an unreachable, slow or refusing Prometheus is a Measurement with verdict
Error and the reason, so the rollout engine alone decides what errors mean (hold, never pass).
The PromQL and the judging of answers are pure, in `modelship.measure`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import aiohttp

from modelship import api
from modelship.measure import MeasureTarget, QueryResult, Sample, TemplateError, error, judge, queries

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_SECONDS = 10.0
URL_HELP = (
    "start the operator with --prometheus-url (env MODELSHIP_PROMETHEUS_URL, chart value prometheus.url)"
)


class PrometheusError(Exception):
    """A query that brought no answer: its message says why, in one line."""


class PrometheusClient:
    """Instant queries against one Prometheus: `/api/v1/query` with an explicit `time`.

    An empty url is allowed (the operator runs without a Prometheus): every query then fails with a
    message saying how to configure one, so an analysis holds instead of the operator not starting.
    """

    def __init__(self, url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds

    async def query(self, promql: str, at: datetime) -> QueryResult:
        """The instant query evaluated at `at` (not "now" on Prometheus' clock, so a late or repeated
        measurement covers the window it is recorded for). Raises PrometheusError."""
        if not self.url:
            raise PrometheusError(f"no Prometheus address: {URL_HELP}")
        form = {"query": promql, "time": f"{at.timestamp():.3f}", "timeout": f"{self.timeout_seconds:g}s"}
        # A session per query: measurements come seconds apart, and a session must not outlive the
        # event loop it was made in (kopf's, or a test's asyncio.run()).
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                # POST: a query of up to 4096 characters fits no URL limit worth testing.
                session.post(f"{self.url}/api/v1/query", data=form) as response,
            ):
                status = response.status
                text = await response.text()
        except TimeoutError:
            raise PrometheusError(
                f"no answer from Prometheus at {self.url} within {self.timeout_seconds:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        return _parse(self.url, status, text)


def _parse(url: str, status: int, text: str) -> QueryResult:
    try:
        payload = json.loads(text)
    except ValueError:
        raise PrometheusError(f"HTTP {status} from {url}, not Prometheus' JSON: {text[:200]!r}") from None
    if not isinstance(payload, dict):
        raise PrometheusError(f"HTTP {status} from {url}, not Prometheus' JSON: {text[:200]!r}")
    if payload.get("status") != "success":
        raise PrometheusError(
            f"Prometheus refused the query ({payload.get('errorType', f'HTTP {status}')}): "
            f"{payload.get('error', text[:200])}"
        )
    data: dict[str, Any] = payload.get("data") or {}
    kind = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "vector":
            samples = tuple(
                Sample(value=float(item["value"][1]), labels=dict(item.get("metric") or {}))
                for item in result
            )
            return QueryResult(kind="vector", samples=samples)
        if kind == "scalar":
            return QueryResult(kind="scalar", samples=(Sample(value=float(result[1])),))
        if kind in ("matrix", "string"):
            return QueryResult(kind=kind)
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise PrometheusError(f"an answer Prometheus' API does not describe ({kind}): {exc!r}") from None
    raise PrometheusError(f"an answer of unknown resultType {kind!r}")


async def measure(
    client: PrometheusClient, check: api.Check, target: MeasureTarget, now: datetime
) -> api.Measurement:
    """One measurement of `check` over [now - target.window, now]; never raises."""
    try:
        try:
            promql = queries(check, target)
        except TemplateError as exc:
            return error(check, now, str(exc))
        results: dict[str, QueryResult] = {}
        for name, text in promql.items():
            try:
                results[name] = await client.query(text, now)
            except PrometheusError as exc:
                return error(check, now, f"{name} query: {exc}")
        return judge(check, target, results, now)
    except Exception as exc:
        # A bug here must neither stall the operator nor pass a canary: it is an Error, logged whole.
        log.exception("measuring check %s of %s/%s", check.name, target.namespace, target.name)
        return error(check, now, f"measuring failed: {exc!r}")
