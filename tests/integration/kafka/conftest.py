"""The Apache Kafka tests (``-m kafka``) share one 3-node cluster a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.kafka.cluster import Cluster, fetch, missing_tools, start_cluster


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    why = missing_tools() or fetch()
    if why:
        pytest.skip(f"Apache Kafka tests need Java and Maven: {why}")
    yield from start_cluster(tmp_path_factory.mktemp("kafka-cluster"))


@pytest.fixture
def cluster(kafka_cluster: Cluster) -> Cluster:
    """The cluster, every node running and healthy, with no topics of an earlier test."""
    kafka_cluster.revive()
    kafka_cluster.wait_healthy()
    kafka_cluster.delete_all_topics()
    return kafka_cluster
