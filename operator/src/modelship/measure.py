"""Measuring a canary, the pure half: a check becomes PromQL, a query result becomes a Measurement.

No I/O here: `modelship.prometheus` sends the queries this module writes and hands the answers back
to `judge()`. The built-in checks read modelship-server's own metrics
(`model_infer_requests_total`, `model_infer_request_duration_seconds_bucket`) per `model_version`,
plus the `namespace` label every Kubernetes scrape configuration adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class MeasureTarget:
    namespace: str
    name: str  # the ModelDeployment; the server's metrics carry it as model_name
    canary_version: str
    stable_version: str | None
    window: timedelta  # the analysis interval: a measurement covers [at - window, at]
