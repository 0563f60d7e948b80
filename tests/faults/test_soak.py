"""A short `make soak` inside the test run: ten ModelDeployments through every kind of spec edit,
user action, pod fault and control-plane fault for 75 s, with a fixed seed."""

from __future__ import annotations

from pathlib import Path

from tests.soak.soak import Config, soak_on, summary
from tests.support.faults import LocalCluster


def test_a_short_soak_does_every_kind_of_thing_and_breaks_no_invariant(
    faults_cluster: LocalCluster, tmp_path: Path
) -> None:
    # Given ten ModelDeployments on the faults cluster, and a seed that replays the choices
    config = Config(seed=1611, objects=10, seconds=75, action_interval=0.4, fault_gap=(1.0, 3.0))
    # When the soak edits, acts, and injects pod and control-plane faults for 75 s, then settles
    record = soak_on(faults_cluster, config, tmp_path)
    # Then it did every kind of action and fault (so the run proves something), and every
    # invariant held all along and at the end
    assert record.never_done == set(), summary(record)
    assert record.violations == [], summary(record)
