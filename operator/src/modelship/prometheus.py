"""Measuring a canary, the I/O half: an async client for Prometheus' HTTP query API.

`measure()` never raises: an unreachable or failing Prometheus is a Measurement with verdict Error
and the reason, so the rollout engine decides what errors mean (hold, never pass).
"""

from __future__ import annotations

from datetime import datetime

from modelship import api
from modelship.measure import MeasureTarget


class PrometheusClient:
    """Instant queries against one Prometheus (`/api/v1/query` with an explicit `time`)."""

    def __init__(self, url: str, timeout_seconds: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds

    async def close(self) -> None:
        """Release the HTTP connections (call once, when the operator stops)."""


async def measure(
    client: PrometheusClient, check: api.Check, target: MeasureTarget, now: datetime
) -> api.Measurement:
    """One measurement of `check` over [now - target.window, now]; never raises."""
    raise NotImplementedError("issue 10b: filled in next")
