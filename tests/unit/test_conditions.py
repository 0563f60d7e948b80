from __future__ import annotations

from modelship.conditions import set_condition

from .builders import T0, later


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    first = set_condition([], "Ready", "False", "RolloutInProgress", "0/3", 1, T0)
    same = set_condition(first, "Ready", "False", "RolloutInProgress", "2/3", 2, later(10))
    flipped = set_condition(same, "Ready", "True", "RolloutComplete", "3/3", 2, later(20))
    assert same[0].last_transition_time == T0
    assert same[0].observed_generation == 2
    assert flipped[0].last_transition_time == later(20)
