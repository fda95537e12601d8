"""Consumer lag per topic: how many messages this process has yet to process.

The runner's kafka-python consumer is read from its own poll loop (it is not
thread-safe): ``end_offsets`` minus ``position`` for the assigned partitions,
every few seconds. The Faust worker's lag comes from its aiokafka consumer: the
highwater it last fetched minus the offset Faust last committed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from kafka.errors import KafkaError

from services.monitoring.metrics import CONSUMER_LAG

log = logging.getLogger("dsr.monitoring")

#: How often lag is refreshed, in seconds.
LAG_INTERVAL_S = 5.0


class LagReporter:
    """Set one consumer group's lag per topic; drop topics this process no longer holds."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._topics: set[str] = set()

    def report(self, lag_by_topic: Mapping[str, int]) -> None:
        for topic, lag in lag_by_topic.items():
            CONSUMER_LAG.labels(topic, self.group).set(lag)
        for topic in self._topics - set(lag_by_topic):
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(topic, self.group)
        self._topics = set(lag_by_topic)


class RunnerLag:
    """Lag of a kafka-python ``KafkaConsumer``; call ``maybe_refresh`` from its poll loop."""

    def __init__(
        self,
        consumer: Any,
        group: str,
        interval_s: float = LAG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.reporter = LagReporter(group)
        self.interval_s = interval_s
        self.clock = clock
        self._due = 0.0

    def maybe_refresh(self) -> None:
        now = self.clock()
        if now < self._due:
            return
        self._due = now + self.interval_s
        self.refresh()

    def refresh(self) -> None:
        assigned = list(self.consumer.assignment() or ())
        lag: dict[str, int] = defaultdict(int)
        try:
            ends = self.consumer.end_offsets(assigned, timeout_ms=2000) if assigned else {}
            for tp in assigned:
                position, end = self.consumer.position(tp, timeout_ms=1000), ends.get(tp)
                if position is not None and end is not None:
                    lag[tp.topic] += max(0, end - position)
        except KafkaError as exc:
            log.debug("consumer lag not refreshed: %s", type(exc).__name__)
            return
        self.reporter.report(lag)


class WorkerLag:
    """Lag of a Faust app's consumer, from what it already knows (no broker round trip)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reporter = LagReporter(str(app.conf.id))

    def refresh(self) -> dict[str, int] | None:
        """Report this worker's lag per topic, and return it (None if not known yet)."""
        consumer = self.app.consumer
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        lag: dict[str, int] = defaultdict(int)
        try:
            assigned = consumer.assignment()
            for tp in assigned:
                highwater, done = consumer.highwater(tp), committed.get(tp)
                if highwater is not None and done is not None:
                    lag[tp.topic] += max(0, highwater - done)
        except Exception as exc:  # noqa: BLE001 - not started yet, or mid-rebalance
            log.debug("worker lag not refreshed: %s", type(exc).__name__)
            return None
        self.reporter.report(lag)
        return dict(lag)
