from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faults import LocalCluster, cluster_up, exclusive


@pytest.fixture(scope="session")
def faults_cluster_up() -> LocalCluster:
    return cluster_up()


@pytest.fixture
def faults_cluster(faults_cluster_up: LocalCluster) -> Iterator[LocalCluster]:
    """The fault tests' own kwok-only cluster, whose apiserver and etcd they kill and freeze: one
    test at a time, whichever pytest worker runs it (a freeze would fail a neighbour's test)."""
    with exclusive(faults_cluster_up) as cluster:
        yield cluster
