"""When a request's silent systems are timed out: once every result sent before its
deadline has been read, not by the clock alone.

Results can wait unread past a request's deadline: behind an outage of the ledger (the
aggregation waits, ``streams.transient``), behind a backlog, or while a worker restarts.
Timing the request out by the clock then answers "no result in time" for systems that
had answered in time. So each worker times out the requests whose results come to the
partitions it reads (the producers' default partitioner: murmur2 of the request id), and
only once it has read each partition up to their deadline: to its end (then up to when
the broker last told it that end: while the broker cannot be reached, no later), or else
up to the time of the last result it recorded from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kafka.partitioner.default import murmur2


class Position(NamedTuple):
    """What a worker's consumer knows of a partition it reads, without asking the
    broker: its end, how far the group has committed, and when a fetch from the broker
    last told it that end (seconds since the epoch). None for what it does not know."""

    highwater: int | None
    committed: int | None
    polled: float | None = None


def partition_of(request_id: str, partitions: int) -> int:
    """The partition of ``partitions`` a request's results go to (keyed by its id)."""
    return (murmur2(request_id.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class Reads:
    """The last result a worker's aggregation recorded from each partition: its offset,
    and when it was sent (the message's timestamp, in seconds)."""

    last: dict[int, tuple[int, float]] = field(default_factory=dict)

    def recorded(self, events: Iterable[Any]) -> None:
        """``events`` (Faust events of the results topic) are recorded in the ledger."""
        for event in events:
            message = event.message
            self.last[message.partition] = (message.offset, message.timestamp)

    def until(self, positions: Mapping[int, Position]) -> dict[int, datetime]:
        """For each partition read, the time up to which its results are recorded: when
        the broker last told its end, if it is read to that end; else when the last
        result recorded from it was sent. A partition with results not read since this
        worker started, or whose end is not known yet, is left out."""
        read: dict[int, datetime] = {}
        for partition, (highwater, committed, polled) in positions.items():
            if highwater is None:
                continue
            offset, sent = self.last.get(partition, (-1, None))
            if max(offset + 1, committed or 0) >= highwater:
                if polled is not None:
                    read[partition] = datetime.fromtimestamp(polled, UTC)
            elif sent is not None:
                read[partition] = datetime.fromtimestamp(sent, UTC)
        return read


def due(
    overdue: Mapping[str, datetime], read: Mapping[int, datetime], partitions: int
) -> list[str]:
    """Of the ``overdue`` requests (their deadlines), those whose results come to a
    partition ``read`` up to past their deadline."""
    return [
        request_id
        for request_id, deadline in overdue.items()
        if (until := read.get(partition_of(request_id, partitions))) is not None
        and deadline < until
    ]
