"""The soak's status witness of "no step twice": within one rollout a step keeps its start time."""

from __future__ import annotations

from typing import Any

from tests.soak.invariants import Record, StepsOnce


def status(index: int, at: str, canary: str = "v2", steps: str = "h1") -> dict[str, Any]:
    return {"canaryVersion": canary, "stepsHash": steps, "currentStepIndex": index, "stepStartedAt": at}


def test_a_step_that_begins_again_in_the_same_rollout_is_a_violation() -> None:
    # Given a rollout seen at step 2, then step 3
    record = Record()
    once = StepsOnce(record)
    once.sample("m", status(1, "10:00:00"))
    once.sample("m", status(2, "10:00:05"))
    # When step 2 shows up again with a new start time
    once.sample("m", status(1, "10:00:09"))
    # Then it is reported as run twice
    assert [v.what for v in record.violations] == [
        "step 2 of version v2 began again: 10:00:00, then 10:00:09"
    ]


def test_a_new_rollout_an_edit_of_the_steps_or_a_retry_starts_afresh() -> None:
    # Given a rollout at step 1
    record = Record()
    once = StepsOnce(record)
    once.sample("m", status(0, "10:00:00"))
    # When its steps are edited, then a retry restarts it, then a new version rolls out
    once.sample("m", status(0, "10:00:03", steps="h2"))
    record.retries["m"] += 1
    once.sample("m", status(0, "10:00:07", steps="h2"))
    once.sample("m", status(0, "10:00:09", canary="v3", steps="h2"))
    # Then none of those is a step run twice
    assert record.violations == [] and record.known == []


def test_the_same_step_sampled_again_is_no_violation() -> None:
    # Given a long step sampled every second
    record = Record()
    once = StepsOnce(record)
    for _ in range(5):
        once.sample("m", status(3, "10:00:00"))
    # Then it counts as checked, and clean
    assert record.known == [] and record.checks["no step twice (status samples)"] == 5
