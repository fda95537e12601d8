"""Topic durability: what the pipeline asks of a cluster of a given size."""

from __future__ import annotations

import pytest

from services.broker import BrokerError, Durability, EmbeddedBroker, create_topics
from streams.topics import TopicSpec


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 2)), (3, (3, 2)), (6, (3, 2))]
)
def test_replication_defaults_to_three_copies_two_in_sync(
    brokers: int, expected: tuple[int, int]
) -> None:
    d = Durability.for_cluster(brokers)
    assert (d.replication, d.min_isr) == expected


def test_configured_settings_win_and_impossible_ones_are_refused() -> None:
    assert Durability.for_cluster(5, replication=5, min_isr=3) == Durability(5, 3)
    assert Durability.for_cluster(3, replication=2) == Durability(2, 2)
    with pytest.raises(BrokerError, match="DSR_TOPIC_REPLICATION=4"):
        Durability.for_cluster(3, replication=4)
    with pytest.raises(BrokerError, match="DSR_TOPIC_MIN_ISR=3"):
        Durability.for_cluster(3, replication=2, min_isr=3)


def test_a_single_copy_sets_no_min_isr() -> None:
    assert Durability(1, 1).topic_configs() == {}
    assert Durability(3, 2).topic_configs() == {"min.insync.replicas": "2"}


@pytest.mark.integration
def test_an_existing_topic_that_differs_is_reported_not_altered() -> None:
    broker = EmbeddedBroker.start()
    try:
        assert create_topics(broker.bootstrap, [TopicSpec("t.a", 3, "test")]) == []
        assert create_topics(broker.bootstrap, [TopicSpec("t.a", 4, "test")]) == [
            "t.a: 3 partitions, expected 4"
        ]
        # Reported again: nothing was changed.
        assert create_topics(broker.bootstrap, [TopicSpec("t.a", 4, "test")]) != []
    finally:
        broker.stop()
