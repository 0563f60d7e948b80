"""The soak's capacity check: a failed canary's dip is the engine's rule until stable is whole again,
and nothing else may dip."""

from __future__ import annotations

from typing import Any, cast

from tests.soak.invariants import CapacitySampler, Exemptions, Record
from tests.soak.kube import Kube


def sampler() -> CapacitySampler:
    return CapacitySampler(cast(Kube, None), Record(), Exemptions(), lambda: True)


def obj(canary: str = "", failed: str = "") -> dict[str, Any]:
    return {"spec": {"replicas": 4}, "status": {"canaryVersion": canary, "failedVersion": failed}}


def feed(s: CapacitySampler, at: float, o: dict[str, Any], ready: int) -> None:
    s.sample({"m": o}, {"m": ready}, at)


def test_a_failed_canarys_dip_is_known_until_stable_is_whole_again() -> None:
    # Given an object whose canary v2 fails at t=10
    s = sampler()
    for t in range(0, 10):
        feed(s, t, obj(canary="v2"), 5)
    feed(s, 10, obj(failed="v2"), 5)
    # When its Ready pods dip from t=12 and stay down 25 s (longer than the window to begin in)
    for t in range(12, 37):
        feed(s, t, obj(failed="v2"), 2)
    feed(s, 37, obj(failed="v2"), 4)
    # Then every dipped sample is the engine's known rule, none a violation
    assert s.record.violations == []
    assert len(s.record.known) == 25


def test_a_second_dip_after_stable_came_back_is_a_violation() -> None:
    # Given a failed canary whose dip ended with stable whole again
    s = sampler()
    for t in range(0, 3):
        feed(s, t, obj(canary="v2"), 5)
    feed(s, 3, obj(failed="v2"), 5)
    feed(s, 4, obj(failed="v2"), 2)
    feed(s, 5, obj(failed="v2"), 4)
    # When the object dips again soon after
    feed(s, 6, obj(failed="v2"), 3)
    # Then that dip is a violation
    assert [v.what for v in s.record.violations] == ["3 Ready pods, needs 4"]


def test_a_dip_that_begins_long_after_the_failure_is_a_violation() -> None:
    # Given a canary that failed 20 s ago without any dip
    s = sampler()
    for t in range(0, 3):
        feed(s, t, obj(canary="v2"), 5)
    for t in range(3, 24):
        feed(s, t, obj(failed="v2"), 4)
    # When the object dips now
    feed(s, 24, obj(failed="v2"), 3)
    # Then it is not the failed canary's doing
    assert len(s.record.violations) == 1 and s.record.known == []


def test_a_failure_no_sample_saw_is_known_by_its_revision() -> None:
    # Given an object whose canary v2 is aborted and retried between two samples (the failed state
    # lasted less than a sample's interval), so samples see v2 as the canary throughout
    s = sampler()
    progressing = obj(canary="v2")
    progressing["status"]["revisions"] = [{"revision": 2, "version": "v2", "outcome": "Progressing"}]
    for t in range(0, 10):
        feed(s, t, progressing, 5)
    retried = obj(canary="v2")
    retried["status"]["revisions"] = [
        {"revision": 2, "version": "v2", "outcome": "Aborted"},
        {"revision": 3, "version": "v2", "outcome": "Progressing"},
    ]
    # When its Ready pods dip right after
    feed(s, 10, retried, 2)
    feed(s, 11, retried, 4)
    # Then the dip is the aborted canary's, the engine's rule, not a violation
    assert s.record.violations == []
    assert [v.what for v in s.record.known] == ["2 Ready pods, needs 4, 0.0s after canary v2 failed"]
