"""The runner's producer: results and dead letters sent, and acknowledged before the
tasks they answer are committed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from connectors.runner.execution import MAX_RETRY_AFTER_S

log = logging.getLogger("dsr.runner")

#: Times a message the broker refused is sent, in all, before the runner gives up.
SEND_ATTEMPTS = 6
#: How long a result waits for others to share its produce request (the Java client's
#: default since Kafka 4.0): a request's results, from its systems' lanes, then go to the
#: broker together, and reach aggregation as one batch.
LINGER_MS = 5
#: Seconds a flush waits for the broker at a time, before it says it is still waiting.
ACK_WAIT_S = 1.0


@dataclass(frozen=True)
class Sent:
    """One message sent, and the send's future."""

    topic: str
    key: bytes | None
    value: bytes
    future: Any


def producer_config(bootstrap: str) -> dict[str, Any]:
    """The runner's producer settings.

    Idempotence is off (kafka-python 3 turns it on by default). An idempotent producer
    holds a producer id that the broker issued; an in-memory broker (Tansu) that restarts
    forgets it, and the producer then fails with ``InitProducerIdResponse UnknownError``
    or ``UnknownProducerId`` instead of sending. Nothing here needs it: a duplicated
    result is harmless, since a task's first ``ok`` result wins in the ledger. The
    runner's metrics are its own (``services.monitoring``), not the client's."""
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": LINGER_MS,
        "metrics_enabled": False,  # kafka-python's own: read by nothing, costly a message
    }


class Sender:
    """Sends on ``producer``, thread-safe; ``sleep`` waits between attempts (and returns
    early when the runner stops); ``waiting`` is called every ``ACK_WAIT_S`` while a
    flush waits for the broker (the runner's loop beats there)."""

    def __init__(
        self,
        producer: KafkaProducer,
        sleep: Callable[[float], object],
        waiting: Callable[[], object] = lambda: None,
    ) -> None:
        self.producer = producer
        self.sleep = sleep
        self.waiting = waiting

    def send(self, topic: str, key: bytes | None, value: bytes | dict[str, Any]) -> Sent:
        """Send (thread-safe); returns what was sent, with the send's future."""
        if isinstance(value, dict):
            value = json.dumps(value).encode()
        future = self.producer.send(topic, key=key, value=value)
        return Sent(topic, key, value, future)

    def flush(self, sent: Sequence[Sent]) -> None:
        """Wait until ``sent`` is acknowledged, sending again what a broker refused (an
        in-memory broker that has just restarted answers ``UnknownError`` for a while,
        which the producer does not retry); raise if it still is not."""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            self._acknowledged()
            failed = [s for s in sent if s.future.failed()]
            if not failed:
                return
            if attempt == SEND_ATTEMPTS:
                failed[0].future.get(timeout=0)  # raises the broker's error
            log.warning(
                "sending again after a broker error",
                extra={
                    "attempts": attempt,
                    "error_type": type(failed[0].future.exception).__name__,
                },
            )
            self.sleep(min(0.5 * 2 ** (attempt - 1), MAX_RETRY_AFTER_S))
            sent = [self.send(s.topic, s.key, s.value) for s in failed]

    def _acknowledged(self) -> None:
        """Flush: wait until every send so far is answered (acknowledged or refused), for
        as long as the producer's own time-outs let it take, ``ACK_WAIT_S`` at a time."""
        while True:
            try:
                self.producer.flush(timeout=ACK_WAIT_S)
                return
            except KafkaTimeoutError:
                self.waiting()  # a broker that does not answer: still alive here
