"""A request is timed out once its results are read up to its deadline, not by the clock
alone; and by the worker that reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from kafka.partitioner.default import DefaultPartitioner

from streams import timeouts
from streams.timeouts import Position

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
POLLED = NOW.timestamp()


def result(partition: int, offset: int, sent: datetime) -> SimpleNamespace:
    """A Faust event of the results topic, as ``Reads.recorded`` sees it."""
    message = SimpleNamespace(partition=partition, offset=offset, timestamp=sent.timestamp())
    return SimpleNamespace(message=message)


def test_a_partition_read_to_its_end_is_read_up_to_when_the_broker_told_that_end() -> None:
    reads = timeouts.Reads()
    reads.recorded([result(0, 9, NOW - timedelta(minutes=5))])
    # read to its end by this worker; committed to its end before it started; empty
    positions = {
        0: Position(10, 8, POLLED),
        1: Position(4, 4, POLLED),
        2: Position(0, None, POLLED),
    }
    assert reads.until(positions) == {0: NOW, 1: NOW, 2: NOW}


def test_while_the_broker_cannot_be_reached_its_last_known_end_counts_until_then() -> None:
    """The broker is away: the consumer's last fetch told it the partition's end, and
    results sent since may wait there. Read to that end, the partition is read up to
    that fetch, not up to now; a partition never fetched is left out."""
    reads = timeouts.Reads()
    reads.recorded([result(0, 9, NOW - timedelta(minutes=5))])
    away = NOW - timedelta(seconds=30)
    positions = {0: Position(10, 8, away.timestamp()), 1: Position(4, 4, None)}
    assert reads.until(positions) == {0: away}


def test_a_partition_behind_is_read_up_to_its_last_recorded_result() -> None:
    """The ledger was away: results wait unread behind the last one recorded."""
    reads = timeouts.Reads()
    before = NOW - timedelta(seconds=40)
    reads.recorded([result(0, 3, before - timedelta(seconds=1)), result(0, 4, before)])
    assert reads.until({0: Position(90, 5, POLLED)}) == {0: before}


def test_a_partition_not_read_yet_or_not_known_yet_is_left_out() -> None:
    """After a restart, results wait from before it: nothing is timed out on them until
    some are read; nor while the consumer does not know the partition's end."""
    reads = timeouts.Reads()
    positions = {0: Position(12, 7, POLLED), 1: Position(12, None), 2: Position(None, 3)}
    assert reads.until(positions) == {}


def test_only_requests_read_past_their_deadline_are_due() -> None:
    partitions = 4
    ids = [f"r-{i}" for i in range(40)]
    by_partition = {
        p: [r for r in ids if timeouts.partition_of(r, partitions) == p] for p in range(4)
    }
    assert all(by_partition.values())
    deadline = NOW - timedelta(seconds=30)
    overdue = dict.fromkeys(ids, deadline)
    read = {
        0: NOW,  # read to its end
        1: deadline + timedelta(seconds=1),  # read past the deadline
        2: deadline - timedelta(seconds=1),  # results sent before the deadline unread
        # 3: not read by this worker
    }
    due = timeouts.due(overdue, read, partitions)
    assert sorted(due) == sorted(by_partition[0] + by_partition[1])


def test_the_partition_is_the_one_the_producers_write_to() -> None:
    """The runners' producer (kafka-python's default partitioner) writes a request's
    results to ``partition_of`` its id."""
    partitions = set(range(6))
    cluster = SimpleNamespace(  # what the partitioner reads of the cluster's metadata
        topics=lambda: {"dsr.results"},
        partitions_for_topic=lambda topic: partitions,
        available_partitions_for_topic=lambda topic: partitions,
    )
    partitioner = DefaultPartitioner()
    for i in range(200):
        key = f"req-{i}".encode()
        written = partitioner.partition("dsr.results", key, key, None, None, cluster)
        assert written == timeouts.partition_of(f"req-{i}", 6)
