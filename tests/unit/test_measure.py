"""Measuring a canary, the pure half: checks become PromQL, Prometheus' answers become Measurements."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from modelship import api
from modelship.measure import (
    MeasureTarget,
    QueryResult,
    Sample,
    TemplateError,
    judge,
    promql_duration,
    queries,
    render_query,
)

AT = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
TARGET = MeasureTarget("ns", "iris", canary_version="v2", stable_version="v1", window=timedelta(seconds=30))
SELECTOR = 'namespace="ns",model_name="iris",model_version=~`v2|v1`'


def check(**kind: object) -> api.Check:
    return api.Check.model_validate({"name": "gate", **kind})


def success_rate(**spec: object) -> api.Check:
    return check(successRate=spec)


def latency(**spec: object) -> api.Check:
    return check(latency=spec)


def custom(query: str = "vector(1)", **bounds: float) -> api.Check:
    return check(prometheus={"query": query, **bounds})


def vector(*samples: tuple[dict[str, str], float]) -> QueryResult:
    return QueryResult("vector", tuple(Sample(value, labels) for labels, value in samples))


def requests(**by_version: tuple[float, float, float]) -> dict[str, QueryResult]:
    """{version: (success, client_error, server_error)} as the requests query answers it."""
    samples = [
        ({"model_version": version, "outcome": outcome}, count)
        for version, counts in by_version.items()
        for outcome, count in zip(("success", "client_error", "server_error"), counts, strict=True)
    ]
    return {"requests": vector(*samples)}


def latencies(count: dict[str, float], quantile_seconds: dict[str, float]) -> dict[str, QueryResult]:
    return {
        "count": vector(*(({"model_version": v}, c) for v, c in count.items())),
        "quantile": vector(*(({"model_version": v}, q) for v, q in quantile_seconds.items())),
    }


# -- PromQL -------------------------------------------------------------------------------------------


def test_the_success_rate_counts_answers_of_both_versions_by_outcome_over_the_window() -> None:
    assert queries(success_rate(minRate=0.99), TARGET) == {
        "requests": "sum by (model_version, outcome) "
        f"(increase(model_infer_requests_total{{{SELECTOR}}}[30s]))"
    }


def test_latency_is_a_quantile_over_buckets_summed_by_le_with_the_successful_count_beside_it() -> None:
    assert queries(latency(quantile=0.95, maxMilliseconds=20), TARGET) == {
        "quantile": "histogram_quantile(0.95, sum by (model_version, le) "
        f"(rate(model_infer_request_duration_seconds_bucket{{{SELECTOR}}}[30s])))",
        "count": f"sum by (model_version) (increase(model_infer_request_duration_seconds_count{{{SELECTOR}}}[30s]))",
    }


def test_dots_in_versions_match_only_dots() -> None:
    target = MeasureTarget("ns", "iris", "1.2.0", "1.10", timedelta(seconds=5))
    assert r"model_version=~`1\.2\.0|1\.10`" in queries(success_rate(minRate=0.9), target)["requests"]


def test_without_a_stable_version_only_the_canary_is_selected() -> None:
    target = MeasureTarget("ns", "iris", "v2", None, timedelta(seconds=5))
    assert "model_version=~`v2`}[5s]" in queries(success_rate(minRate=0.9), target)["requests"]


@pytest.mark.parametrize(
    ("window", "duration"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=2), "120s"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_windows_are_written_as_promql_durations(window: timedelta, duration: str) -> None:
    assert promql_duration(window) == duration


def test_a_custom_query_gets_every_name_filled_in() -> None:
    query = (
        "sum(x{ns='{{namespace}}',n='{{ name }}',c='{{canaryVersion}}',s='{{stableVersion}}'}[{{interval}}])"
    )
    assert render_query(query, TARGET) == "sum(x{ns='ns',n='iris',c='v2',s='v1'}[30s])"


def test_an_unknown_placeholder_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{\{canary\}\}.*known: \{\{namespace\}\}"):
        render_query("up{v='{{canary}}'}", TARGET)


def test_stable_version_in_a_query_without_a_stable_version_is_refused() -> None:
    target = MeasureTarget("ns", "iris", "v2", None, timedelta(seconds=30))
    with pytest.raises(TemplateError, match="no stable version"):
        queries(custom("up{v='{{stableVersion}}'}", max=1), target)


# -- success rate -------------------------------------------------------------------------------------


def test_a_canary_above_the_minimum_rate_is_successful() -> None:
    got = judge(success_rate(minRate=0.98), TARGET, requests(v2=(990, 10, 0), v1=(1000, 0, 0)), AT)
    assert (got.verdict, got.value, got.threshold) == (api.Verdict.SUCCESSFUL, 0.99, ">= 0.98")
    assert (
        got.message
        == "canary success rate 0.99 of 1000 requests in 30s (990 ok, 10 client errors, 0 server errors)"
    )
    assert got.measured_at == AT


def test_client_errors_count_as_failures() -> None:
    got = judge(success_rate(minRate=0.5), TARGET, requests(v2=(0, 120, 0), v1=(100, 0, 0)), AT)
    assert (got.verdict, got.value) == (api.Verdict.FAILED, 0.0)


def test_fewer_requests_than_min_requests_is_inconclusive_saying_how_many() -> None:
    got = judge(success_rate(minRate=0.99), TARGET, requests(v2=(3, 0, 0), v1=(100, 0, 0)), AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message == "3 requests to the canary in 30s, need 20"


def test_no_series_of_the_canary_is_inconclusive_not_zero_errors() -> None:
    got = judge(success_rate(minRate=0.99), TARGET, requests(v1=(100, 0, 0)), AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message.startswith("no model_infer_requests_total series of version v2 of ns/iris in 30s")


def test_a_canary_dropping_more_than_allowed_below_stable_fails_naming_the_stable_rate() -> None:
    got = judge(success_rate(maxDropVsStable=0.01), TARGET, requests(v2=(95, 5, 0), v1=(1000, 0, 0)), AT)
    assert got.verdict == api.Verdict.FAILED
    assert got.threshold == ">= stable 1 - 0.01 = 0.99"


def test_a_canary_as_good_as_a_flaky_stable_passes_the_relative_check() -> None:
    got = judge(success_rate(maxDropVsStable=0.01), TARGET, requests(v2=(95, 5, 0), v1=(950, 0, 50)), AT)
    assert got.verdict == api.Verdict.SUCCESSFUL


def test_a_stable_version_with_too_few_requests_makes_the_comparison_inconclusive() -> None:
    got = judge(success_rate(maxDropVsStable=0.01), TARGET, requests(v2=(100, 0, 0), v1=(2, 0, 0)), AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message == "2 requests to the stable version in 30s, need 20"


def test_both_limits_must_hold() -> None:
    spec = success_rate(minRate=0.99, maxDropVsStable=0.5)
    got = judge(spec, TARGET, requests(v2=(90, 10, 0), v1=(100, 0, 0)), AT)
    assert got.verdict == api.Verdict.FAILED
    assert got.threshold == ">= 0.99 and >= stable 1 - 0.5 = 0.5"


def test_a_built_in_query_answering_something_other_than_a_vector_is_an_error() -> None:
    got = judge(success_rate(minRate=0.9), TARGET, {"requests": QueryResult("matrix")}, AT)
    assert got.verdict == api.Verdict.ERROR
    assert "matrix" in got.message


# -- latency ------------------------------------------------------------------------------------------


def test_a_canary_under_the_latency_limit_is_successful_in_milliseconds() -> None:
    got = judge(latency(maxMilliseconds=20), TARGET, latencies({"v2": 100, "v1": 100}, {"v2": 0.012}), AT)
    assert (got.verdict, got.value, got.threshold) == (api.Verdict.SUCCESSFUL, 12.0, "<= 20 ms")


def test_a_canary_slower_than_the_ratio_times_stable_fails_with_the_stable_value_in_the_threshold() -> None:
    results = latencies({"v2": 100, "v1": 100}, {"v2": 0.030, "v1": 0.010})
    got = judge(latency(maxRatioVsStable=1.5), TARGET, results, AT)
    assert got.verdict == api.Verdict.FAILED
    assert got.threshold == "<= 1.5 x stable p99 10 ms = 15 ms"


def test_too_few_successful_requests_make_latency_inconclusive() -> None:
    got = judge(latency(maxMilliseconds=20), TARGET, latencies({"v2": 5}, {"v2": 0.001}), AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message == "5 successful requests to the canary in 30s, need 20"


def test_a_nan_quantile_is_inconclusive() -> None:
    got = judge(latency(maxMilliseconds=20), TARGET, latencies({"v2": 50}, {"v2": math.nan}), AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message == "no p99 latency of the canary in 30s"


def test_a_quantile_beyond_the_largest_bucket_is_an_error_not_a_pass() -> None:
    got = judge(latency(maxMilliseconds=1e9), TARGET, latencies({"v2": 50}, {"v2": math.inf}), AT)
    assert got.verdict == api.Verdict.ERROR


# -- custom queries -----------------------------------------------------------------------------------


def test_one_series_within_bounds_is_successful() -> None:
    got = judge(custom(min=0.5, max=2), TARGET, {"query": vector(({"job": "x"}, 1.0))}, AT)
    assert (got.verdict, got.value, got.threshold) == (api.Verdict.SUCCESSFUL, 1.0, ">= 0.5 and <= 2")


def test_a_scalar_out_of_bounds_fails() -> None:
    got = judge(custom(max=2), TARGET, {"query": QueryResult("scalar", (Sample(3.0),))}, AT)
    assert (got.verdict, got.value) == (api.Verdict.FAILED, 3.0)


def test_an_empty_result_is_inconclusive() -> None:
    got = judge(custom(max=2), TARGET, {"query": vector()}, AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE
    assert got.message == "the query returned no series in 30s: no data yet"


def test_several_series_are_an_error_asking_for_an_aggregation() -> None:
    results = {"query": vector(({"pod": "a"}, 1.0), ({"pod": "b"}, 1.0))}
    got = judge(custom(max=2), TARGET, results, AT)
    assert got.verdict == api.Verdict.ERROR
    assert got.message.startswith(
        'the query returned 2 series ({pod="a"}, {pod="b"}); a check needs exactly one'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_that_is_not_a_number_never_passes(value: float) -> None:
    got = judge(custom(min=0), TARGET, {"query": vector(({}, value))}, AT)
    assert got.verdict == api.Verdict.INCONCLUSIVE


def test_a_range_vector_is_an_error() -> None:
    got = judge(custom(max=1), TARGET, {"query": QueryResult("matrix")}, AT)
    assert got.verdict == api.Verdict.ERROR


def test_a_dry_run_check_says_so_in_its_measurements() -> None:
    spec = api.Check.model_validate({"name": "gate", "dryRun": True, "prometheus": {"query": "x", "max": 1}})
    assert judge(spec, TARGET, {"query": vector(({}, 5.0))}, AT).dry_run is True
