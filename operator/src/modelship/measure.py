"""Measuring a canary, the pure half: a check becomes PromQL, a query result becomes a Measurement.

No I/O here: `modelship.prometheus` sends the queries `queries()` writes and hands the answers to
`judge()`. The built-in checks read modelship-server's own metrics per `model_version`
(`model_infer_requests_total` by outcome, `model_infer_request_duration_seconds_bucket`), plus the
`namespace` label every Kubernetes scrape configuration adds, summed over pods and protocols.

Each built-in query asks for the canary and the stable version at once (`sum by (model_version)`),
so both are measured over the same window at the same evaluation time. Every measurement covers
[at - window, at]: `increase()`/`rate()` over the window, evaluated at `at`.

Nothing here passes on missing data: too few requests, no series, NaN or an infinite value is
Inconclusive (not yet known); an answer that cannot mean anything (several series where one is
required, a range vector) is Error, with a message saying what to change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelship import api

REQUESTS = "model_infer_requests_total"
DURATION_BUCKETS = "model_infer_request_duration_seconds_bucket"
DURATION_COUNT = "model_infer_request_duration_seconds_count"
VERSION_LABEL = "model_version"

# Names of the queries a check needs; `judge()` reads the results under the same names.
Q_REQUESTS = "requests"  # by version and outcome
Q_QUANTILE = "quantile"  # latency quantile by version, seconds
Q_LATENCY_COUNT = "count"  # successful requests by version (the histogram counts only those)
Q_CUSTOM = "query"

TEMPLATE_NAMES = ("namespace", "name", "canaryVersion", "stableVersion", "interval")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class TemplateError(ValueError):
    """A custom query names a placeholder this module cannot fill."""


@dataclass(frozen=True)
class MeasureTarget:
    namespace: str
    name: str  # the ModelDeployment; the server's metrics carry it as model_name
    canary_version: str
    stable_version: str | None
    window: timedelta  # the analysis interval: a measurement covers [at - window, at]


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer (a scalar answer has no labels)."""

    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryResult:
    """Prometheus' `data` of an instant query: resultType and the samples it holds."""

    kind: Literal["vector", "scalar", "matrix", "string"]
    samples: tuple[Sample, ...] = ()


# -- PromQL -------------------------------------------------------------------------------------------


def promql_duration(window: timedelta) -> str:
    """timedelta -> a PromQL duration ('30s', '1500ms'); never below 1ms."""
    millis = max(1, round(window.total_seconds() * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _versions(target: MeasureTarget) -> list[str]:
    return [v for v in (target.canary_version, target.stable_version) if v]


def _selector(target: MeasureTarget) -> str:
    # Versions are DNS-ish ([a-z0-9.-]); a backtick string keeps the regex escapes literal.
    versions = "|".join(re.escape(v) for v in _versions(target))
    return f'namespace="{target.namespace}",model_name="{target.name}",{VERSION_LABEL}=~`{versions}`'


def requests_query(target: MeasureTarget) -> str:
    """Answers in the window, by version and outcome (success, client_error, server_error)."""
    window = promql_duration(target.window)
    return f"sum by ({VERSION_LABEL}, outcome) (increase({REQUESTS}{{{_selector(target)}}}[{window}]))"


def quantile_query(target: MeasureTarget, quantile: float) -> str:
    """The latency quantile of successful answers in the window, by version, in seconds."""
    window = promql_duration(target.window)
    buckets = f"sum by ({VERSION_LABEL}, le) (rate({DURATION_BUCKETS}{{{_selector(target)}}}[{window}]))"
    return f"histogram_quantile({quantile!r}, {buckets})"


def latency_count_query(target: MeasureTarget) -> str:
    """Successful answers in the window, by version: the population the latency histogram counts."""
    window = promql_duration(target.window)
    return f"sum by ({VERSION_LABEL}) (increase({DURATION_COUNT}{{{_selector(target)}}}[{window}]))"


def render_query(query: str, target: MeasureTarget) -> str:
    """Fill a custom query's {{namespace}} {{name}} {{canaryVersion}} {{stableVersion}} {{interval}}.

    Raises TemplateError naming any other placeholder, and {{stableVersion}} when there is no stable
    version: a query silently left with braces in it would only fail later, less clearly.
    """
    values = {
        "namespace": target.namespace,
        "name": target.name,
        "canaryVersion": target.canary_version,
        "stableVersion": target.stable_version,
        "interval": promql_duration(target.window),
    }
    unknown = sorted({m for m in _PLACEHOLDER.findall(query) if m not in values})
    if unknown:
        names = ", ".join("{{" + u + "}}" for u in unknown)
        known = ", ".join("{{" + k + "}}" for k in TEMPLATE_NAMES)
        raise TemplateError(f"unknown placeholder {names} in the query; known: {known}")
    if target.stable_version is None and "stableVersion" in _PLACEHOLDER.findall(query):
        raise TemplateError("the query uses {{stableVersion}} but there is no stable version")

    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)] or ""

    return _PLACEHOLDER.sub(fill, query)


def queries(check: api.Check, target: MeasureTarget) -> dict[str, str]:
    """The PromQL one measurement of `check` needs, by name. Raises TemplateError (custom queries)."""
    if check.success_rate is not None:
        return {Q_REQUESTS: requests_query(target)}
    if check.latency is not None:
        return {
            Q_QUANTILE: quantile_query(target, check.latency.quantile),
            Q_LATENCY_COUNT: latency_count_query(target),
        }
    if check.prometheus is not None:
        return {Q_CUSTOM: render_query(check.prometheus.query, target)}
    raise TemplateError(f"check {check.name} has none of successRate, latency, prometheus")


# -- judging ------------------------------------------------------------------------------------------


def measurement(
    check: api.Check,
    at: datetime,
    verdict: api.Verdict,
    message: str,
    value: float | None = None,
    threshold: str = "",
) -> api.Measurement:
    return api.Measurement(
        check=check.name,
        verdict=verdict,
        value=value,
        threshold=threshold,
        message=message,
        measured_at=at,
        dry_run=check.dry_run,
    )


def error(check: api.Check, at: datetime, message: str) -> api.Measurement:
    return measurement(check, at, api.Verdict.ERROR, message, threshold=threshold(check))


def _num(value: float) -> str:
    """A value for a one-line message: 4 significant digits."""
    return f"{value:.4g}"


def _count(value: float) -> str:
    # increase() extrapolates to the window's edges, so counts come back fractional.
    return str(round(value))


def _quantile_name(quantile: float) -> str:
    return f"p{quantile * 100:g}"


def threshold(check: api.Check) -> str:
    """The check's condition as a person reads it, before any stable value is known."""
    parts: list[str] = []
    if check.success_rate is not None:
        spec = check.success_rate
        if spec.min_rate is not None:
            parts.append(f">= {_num(spec.min_rate)}")
        if spec.max_drop_vs_stable is not None:
            parts.append(f">= stable - {_num(spec.max_drop_vs_stable)}")
    elif check.latency is not None:
        lat = check.latency
        if lat.max_milliseconds is not None:
            parts.append(f"<= {_num(lat.max_milliseconds)} ms")
        if lat.max_ratio_vs_stable is not None:
            parts.append(f"<= {_num(lat.max_ratio_vs_stable)} x stable {_quantile_name(lat.quantile)}")
    elif check.prometheus is not None:
        if check.prometheus.min is not None:
            parts.append(f">= {_num(check.prometheus.min)}")
        if check.prometheus.max is not None:
            parts.append(f"<= {_num(check.prometheus.max)}")
    return " and ".join(parts)


@dataclass(frozen=True)
class _Outcomes:
    success: float = 0.0
    client_error: float = 0.0
    server_error: float = 0.0

    @property
    def total(self) -> float:
        return self.success + self.client_error + self.server_error

    @property
    def rate(self) -> float | None:
        return self.success / self.total if self.total > 0 else None

    def describe(self) -> str:
        return (
            f"{_count(self.success)} ok, {_count(self.client_error)} client errors, "
            f"{_count(self.server_error)} server errors"
        )


def _outcomes(result: QueryResult, version: str) -> _Outcomes | None:
    """The version's answers by outcome; None when Prometheus has no series of it at all."""
    counts: dict[str, float] = {}
    for sample in result.samples:
        if sample.labels.get(VERSION_LABEL) == version:
            outcome = sample.labels.get("outcome", "")
            counts[outcome] = counts.get(outcome, 0.0) + sample.value
    if not counts:
        return None
    return _Outcomes(
        counts.get("success", 0.0), counts.get("client_error", 0.0), counts.get("server_error", 0.0)
    )


def _of_version(result: QueryResult, version: str) -> float | None:
    """The value of the version's series (one per version: the queries sum by model_version)."""
    for sample in result.samples:
        if sample.labels.get(VERSION_LABEL) == version:
            return sample.value
    return None


class _Unknown(Exception):
    """Not yet known: becomes an Inconclusive measurement with this message (and value, if any)."""

    def __init__(self, message: str, value: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.value = value


class _Broken(Exception):
    """Cannot mean anything as asked: becomes an Error measurement with this message."""


def _no_series(target: MeasureTarget, metric: str, version: str) -> _Unknown:
    return _Unknown(
        f"no {metric} series of version {version} of {target.namespace}/{target.name} in "
        f"{promql_duration(target.window)}: Prometheus has not scraped its pods yet, or does not scrape them"
    )


def _requests(
    result: QueryResult, target: MeasureTarget, version: str, role: str, need: int, rate: float | None = None
) -> _Outcomes:
    outcomes = _outcomes(result, version)
    if outcomes is None:
        raise _no_series(target, REQUESTS, version)
    if outcomes.total < need or outcomes.total <= 0:
        raise _Unknown(
            f"{_count(outcomes.total)} requests to the {role} in {promql_duration(target.window)}, need {need}",
            value=rate if rate is not None else outcomes.rate,
        )
    if not all(math.isfinite(v) for v in (outcomes.success, outcomes.client_error, outcomes.server_error)):
        raise _Broken(f"the request counts of the {role} are not finite: {outcomes.describe()}")
    return outcomes


def _judge_success_rate(
    spec: api.SuccessRateCheck, target: MeasureTarget, results: Mapping[str, QueryResult]
) -> tuple[bool, float, str, str]:
    result = results[Q_REQUESTS]
    canary = _requests(result, target, target.canary_version, "canary", spec.min_requests)
    rate = canary.success / canary.total
    limits: list[str] = []
    failed = False
    if spec.min_rate is not None:
        limits.append(f">= {_num(spec.min_rate)}")
        failed = rate < spec.min_rate
    message = (
        f"canary success rate {_num(rate)} of {_count(canary.total)} requests in "
        f"{promql_duration(target.window)} ({canary.describe()})"
    )
    if spec.max_drop_vs_stable is not None:
        if target.stable_version is None:
            raise _Broken("maxDropVsStable compares with the stable version, and there is none")
        stable = _requests(result, target, target.stable_version, "stable version", spec.min_requests, rate)
        stable_rate = stable.success / stable.total
        floor = stable_rate - spec.max_drop_vs_stable
        limits.append(f">= stable {_num(stable_rate)} - {_num(spec.max_drop_vs_stable)} = {_num(floor)}")
        failed = failed or rate < floor
        message += f"; stable {_num(stable_rate)} of {_count(stable.total)} ({stable.describe()})"
    return failed, rate, " and ".join(limits), message


def _latency_of(
    results: Mapping[str, QueryResult], target: MeasureTarget, version: str, role: str, spec: api.LatencyCheck
) -> float:
    """The version's quantile in milliseconds, once it has at least minRequests successful answers."""
    count = _of_version(results[Q_LATENCY_COUNT], version)
    if count is None:
        raise _no_series(target, DURATION_COUNT, version)
    window = promql_duration(target.window)
    if not count >= spec.min_requests or count <= 0:
        raise _Unknown(
            f"{_count(count)} successful requests to the {role} in {window}, need {spec.min_requests}"
        )
    seconds = _of_version(results[Q_QUANTILE], version)
    if seconds is None or math.isnan(seconds):
        raise _Unknown(f"no {_quantile_name(spec.quantile)} latency of the {role} in {window}")
    if math.isinf(seconds):
        # histogram_quantile answers +Inf when the quantile lies in the +Inf bucket.
        raise _Broken(
            f"the {role}'s {_quantile_name(spec.quantile)} latency is above the histogram's largest bucket"
        )
    return seconds * 1000.0


def _judge_latency(
    spec: api.LatencyCheck, target: MeasureTarget, results: Mapping[str, QueryResult]
) -> tuple[bool, float, str, str]:
    name = _quantile_name(spec.quantile)
    canary_ms = _latency_of(results, target, target.canary_version, "canary", spec)
    limits: list[str] = []
    failed = False
    if spec.max_milliseconds is not None:
        limits.append(f"<= {_num(spec.max_milliseconds)} ms")
        failed = canary_ms > spec.max_milliseconds
    message = f"canary {name} {_num(canary_ms)} ms in {promql_duration(target.window)}"
    if spec.max_ratio_vs_stable is not None:
        if target.stable_version is None:
            raise _Broken("maxRatioVsStable compares with the stable version, and there is none")
        stable_ms = _latency_of(results, target, target.stable_version, "stable version", spec)
        ceiling = spec.max_ratio_vs_stable * stable_ms
        limits.append(
            f"<= {_num(spec.max_ratio_vs_stable)} x stable {name} {_num(stable_ms)} ms = {_num(ceiling)} ms"
        )
        failed = failed or canary_ms > ceiling
        message += f"; stable {name} {_num(stable_ms)} ms"
    return failed, canary_ms, " and ".join(limits), message


def _single_value(result: QueryResult, window: str) -> float:
    if result.kind == "scalar" and result.samples:
        return result.samples[0].value
    if result.kind != "vector":
        raise _Broken(f"the query answered a {result.kind}; a check needs an instant vector or a scalar")
    if not result.samples:
        raise _Unknown(f"the query returned no series in {window}: no data yet")
    if len(result.samples) > 1:
        shown = ", ".join(
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}"
            for s in result.samples[:3]
        )
        more = f" and {len(result.samples) - 3} more" if len(result.samples) > 3 else ""
        raise _Broken(
            f"the query returned {len(result.samples)} series ({shown}{more}); a check needs exactly one: "
            "aggregate it (sum, max, ...)"
        )
    return result.samples[0].value


def _judge_custom(
    spec: api.PrometheusCheck, target: MeasureTarget, results: Mapping[str, QueryResult]
) -> tuple[bool, float, str, str]:
    window = promql_duration(target.window)
    value = _single_value(results[Q_CUSTOM], window)
    if not math.isfinite(value):
        # NaN is usually 0/0 (no requests in the window); neither it nor an infinity may pass a bound.
        raise _Unknown(f"the query returned {value} in {window} (0/0 when there were no requests?)")
    failed = (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)
    return failed, value, "", f"the query returned {_num(value)} in {window}"


def judge(
    check: api.Check, target: MeasureTarget, results: Mapping[str, QueryResult], at: datetime
) -> api.Measurement:
    """The Measurement of `check` from the answers to `queries(check, target)` evaluated at `at`."""
    try:
        if check.prometheus is None:
            for name, result in results.items():
                if result.kind != "vector":
                    raise _Broken(f"the {name} query answered a {result.kind}, expected an instant vector")
        if check.success_rate is not None:
            failed, value, limits, message = _judge_success_rate(check.success_rate, target, results)
        elif check.latency is not None:
            failed, value, limits, message = _judge_latency(check.latency, target, results)
        elif check.prometheus is not None:
            failed, value, limits, message = _judge_custom(check.prometheus, target, results)
        else:
            return error(check, at, "the check has none of successRate, latency, prometheus")
    except _Unknown as unknown:
        return measurement(
            check, at, api.Verdict.INCONCLUSIVE, unknown.message, unknown.value, threshold(check)
        )
    except _Broken as broken:
        return error(check, at, str(broken))
    verdict = api.Verdict.FAILED if failed else api.Verdict.SUCCESSFUL
    return measurement(check, at, verdict, message, value, limits or threshold(check))
