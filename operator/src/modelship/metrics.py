"""The operator's own Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelship.api import Phase
from modelship.engine import Event

RECONCILES = Counter("modelship_reconciles", "Reconcile passes, by result (ok, error, invalid).", ["result"])
RECONCILE_SECONDS = Histogram(
    "modelship_reconcile_duration_seconds",
    "Time one reconcile pass takes, API calls included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROLLOUTS = Counter("modelship_rollouts", "Rollouts that ended, by outcome.", ["outcome"])

# Event reasons that end a rollout, mapped to the outcome they count as.
_OUTCOME_OF = {
    "VersionPromoted": "promoted",
    "AbortedByUser": "aborted",
    "ProgressDeadlineExceeded": "rolled_back",
    "CanaryCrashLooping": "rolled_back",
    "RolledBack": "rolled_back",
    "RolloutSuperseded": "superseded",
}

_phases: dict[tuple[str, str], str] = {}


def count_outcomes(events: Iterable[Event]) -> None:
    for event in events:
        outcome = _OUTCOME_OF.get(event.reason)
        if outcome:
            ROLLOUTS.labels(outcome=outcome).inc()


def record_phase(namespace: str, name: str, phase: str | None) -> None:
    if phase:
        _phases[(namespace, name)] = phase


def forget(namespace: str, name: str) -> None:
    _phases.pop((namespace, name), None)


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
