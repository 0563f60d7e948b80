from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import FAULTS_CLUSTER, LocalCluster, cluster_up


@pytest.fixture(scope="session")
def faults_cluster_up() -> LocalCluster:
    return cluster_up()


@pytest.fixture
def faults_cluster(faults_cluster_up: LocalCluster) -> Iterator[LocalCluster]:
    """The fault tests' own kwok-only cluster, whose apiserver and etcd they kill and freeze: one
    test at a time, whichever pytest worker runs it (a freeze would fail a neighbour's test)."""
    lock_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelship-{FAULTS_CLUSTER}.exclusive.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield faults_cluster_up
