"""The runner's group membership: what it does when partitions come and go, when it
gives a stuck membership up, and how it commits an offset."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger("dsr.runner")

#: A group membership not stable for this long is given up: the runner stops, uncommitted,
#: for its supervisor to start a fresh one (a rejoin was seen to hang for the group's whole
#: rebalance timeout, 5 min, after every broker had restarted and the topics were made anew).
REJOIN_STUCK_S = 90.0


class RejoinStuck(KafkaError):  # type: ignore[misc]  # kafka-python ships no types
    """The consumer has not had a stable group membership for ``REJOIN_STUCK_S``."""

    retriable = False


class Assignment(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """Finish and commit in-flight batches before partitions go, log assignments, and
    tell ``on_assigned`` (e.g. a supervisor's readiness).

    Nothing here may raise: kafka-python turns an exception in a rebalance callback into
    "User rebalance callback throws an error" from ``poll`` and the runner stopped. After
    a broker restart the group and its offsets are gone and a commit fails; the tasks
    not committed then simply run again (``task_id`` is the idempotency key)."""

    def __init__(
        self,
        on_revoked: Callable[[], None],
        on_lost: Callable[[], None],
        on_assigned: Callable[[], None] | None,
    ) -> None:
        self.on_revoked = on_revoked
        self.on_lost = on_lost
        self.on_assigned = on_assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked", extra={"partitions": len(revoked)})
        _quietly(self.on_revoked, "could not commit before a rebalance")

    def on_partitions_lost(self, lost: Any) -> None:
        # Evicted from the group (e.g. the broker restarted): a commit cannot succeed.
        log.warning("partitions lost", extra={"partitions": len(lost)})
        _quietly(self.on_lost, "could not finish the batches in flight")

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned", extra={"partitions": len(assigned)})
        if self.on_assigned is not None:
            _quietly(self.on_assigned, "could not report readiness")


def _quietly(callback: Callable[[], None], what: str) -> None:
    try:
        callback()
    except Exception as exc:
        log.warning(
            "%s; tasks not committed may run again",
            what,
            extra={"error_type": type(exc).__name__},
        )


def offset_of(offset: int) -> OffsetAndMetadata:
    """An OffsetAndMetadata for kafka-python 2.0 (two fields) and later (three)."""
    values = {"offset": offset, "metadata": "", "leader_epoch": -1}
    return OffsetAndMetadata(**{f: values[f] for f in OffsetAndMetadata._fields})
