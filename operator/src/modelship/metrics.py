"""The operator's own Prometheus metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelship.api import Phase, Verdict
from modelship.engine import Event, Measured

RECONCILES = Counter(
    "modelship_reconciles",
    "Reconcile passes, by result (ok, error, invalid, gone: deleted unseen, conflict: status changed since read).",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "modelship_reconcile_duration_seconds",
    "Time one reconcile pass takes, API calls included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROLLOUTS = Counter("modelship_rollouts", "Rollouts that ended, by outcome.", ["outcome"])
_CHECK_LABELS = ["namespace", "name", "check"]
ANALYSIS_MEASUREMENTS = Counter(
    "modelship_analysis_measurements",
    "Measurements of canary analysis checks, by verdict (Successful, Failed, Inconclusive, Error).",
    [*_CHECK_LABELS, "verdict"],
)
ANALYSIS_VALUE = Gauge(
    "modelship_analysis_value",
    "The last value a canary analysis check measured (measurements without a value leave it).",
    _CHECK_LABELS,
)

# Event reasons that end a rollout, mapped to the outcome they count as.
_OUTCOME_OF = {
    "VersionPromoted": "promoted",
    "AbortedByUser": "aborted",
    "ProgressDeadlineExceeded": "rolled_back",
    "CanaryCrashLooping": "rolled_back",
    "RolledBack": "rolled_back",
    "AnalysisFailed": "rolled_back",
    "RolloutSuperseded": "superseded",
}

_phases: dict[tuple[str, str], str] = {}
# The checks each object has labelled series of, so a deleted object's series go with it.
_checks: dict[tuple[str, str], set[str]] = {}


def count_outcomes(events: Iterable[Event]) -> None:
    for event in events:
        outcome = _OUTCOME_OF.get(event.reason)
        if outcome:
            ROLLOUTS.labels(outcome=outcome).inc()


def count_measurements(namespace: str, name: str, measured: Iterable[Measured]) -> None:
    for item in measured:
        m = item.measurement
        ANALYSIS_MEASUREMENTS.labels(namespace, name, m.check, m.verdict).inc()
        if m.value is not None:
            ANALYSIS_VALUE.labels(namespace, name, m.check).set(m.value)
        _checks.setdefault((namespace, name), set()).add(m.check)


def record_phase(namespace: str, name: str, phase: str | None) -> None:
    if phase:
        _phases[(namespace, name)] = phase


def forget(namespace: str, name: str) -> None:
    _phases.pop((namespace, name), None)
    for check in _checks.pop((namespace, name), set()):
        for verdict in Verdict:
            _remove(ANALYSIS_MEASUREMENTS, namespace, name, check, verdict.value)
        _remove(ANALYSIS_VALUE, namespace, name, check)


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never measured with this verdict
        metric.remove(*labels)


class _PhaseCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelship_modeldeployments",
            "ModelDeployments this operator watches, by phase.",
            labels=["phase"],
        )
        for phase in Phase:
            family.add_metric([phase.value], sum(1 for p in _phases.values() if p == phase.value))
        yield family


REGISTRY.register(_PhaseCollector())
