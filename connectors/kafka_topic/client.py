"""One topic on one cluster, through kafka-python: scan it for keys, write records to it.

The reader is a consumer with no group: it assigns itself every partition, so
it never joins, rebalances or commits. Every Kafka error leaves this module as
a connector error (see ``classify``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors

from connectors.errors import ConfigError, ConnectorError, FatalError, RetriableError
from connectors.kafka_topic.config import KafkaTopicConfig

#: Errors that mean the cluster refused the connector's login or access: retrying will not help.
_REFUSED: tuple[type[Exception], ...] = (
    kafka_errors.AuthorizationError,
    kafka_errors.SaslAuthenticationFailedError,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
)

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Latest:
    """The newest record of one key in one partition; ``value`` None is a tombstone."""

    key: bytes
    partition: int
    offset: int
    value: bytes | None
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class Write:
    """One record to produce to a given partition; ``value`` None is a tombstone."""

    key: bytes
    partition: int
    value: bytes | None
    headers: Headers = field(default_factory=list)


class Topic:
    """The configured topic. A consumer is built per scan; the producer is kept."""

    def __init__(self, system: str, cfg: KafkaTopicConfig) -> None:
        self.system = system
        self.cfg = cfg
        self.name = cfg.topic
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------

    def describe(self) -> str:
        """Confirm the topic exists and can be read; say how big it is."""
        with self._consumer() as consumer:
            partitions = self._partitions(consumer)
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            consumer.poll(timeout_ms=1000, max_records=1)  # one fetch: may we read?
        return f"topic {self.name!r} is readable: {len(partitions)} partitions"

    def scan(self, keys: Collection[bytes]) -> dict[tuple[bytes, int], Latest]:
        """The newest record of each of ``keys`` in each partition that has one.

        Reads every partition from its beginning to its end offset at call time,
        so it takes time in proportion to the topic; it gives up with a
        ``RetriableError`` after ``timeout_s``.
        """
        wanted = set(keys)
        latest: dict[tuple[bytes, int], Latest] = {}
        with self._consumer() as consumer:
            partitions = self._partitions(consumer)
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            start = consumer.beginning_offsets(partitions)
            end = consumer.end_offsets(partitions)
            todo = {tp for tp in partitions if end[tp] > start[tp]}
            pinned: set[TopicPartition] = set()
            deadline = time.monotonic() + self.cfg.timeout_s
            while todo:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RetriableError(
                        f"system {self.system!r}: topic {self.name!r} was not read to its end "
                        f"within {self.cfg.timeout_s:g}s; a larger topic needs a larger timeout_s"
                    )
                for tp, records in consumer.poll(timeout_ms=int(min(left, 0.5) * 1000)).items():
                    for r in records:
                        if r.key in wanted:
                            headers = list(r.headers or [])
                            latest[r.key, tp.partition] = Latest(
                                r.key, tp.partition, r.offset, r.value, headers
                            )
                for tp in list(todo):
                    # Some brokers (the embedded Tansu) report an end offset inside the last
                    # batch; the first fetch's high watermark bounds the scan as well.
                    if tp not in pinned and (high := consumer.highwater(tp)) is not None:
                        end[tp] = max(end[tp], high)
                        pinned.add(tp)
                    if consumer.position(tp) >= end[tp]:
                        todo.discard(tp)
                        consumer.pause(tp)
        return latest

    # -- writing ------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        """Produce ``writes`` to their partitions and wait until the cluster has them all."""
        if not writes:
            return
        with _classified(self.system, self.name):
            try:
                producer = self._get_producer()
                futures = [
                    producer.send(
                        self.name,
                        key=w.key,
                        value=w.value,
                        partition=w.partition,
                        headers=w.headers or None,
                    )
                    for w in writes
                ]
                producer.flush(timeout=self.cfg.timeout_s)
                for future in futures:
                    future.get(timeout=self.cfg.timeout_s)  # raises the delivery error, if any
            except Exception:
                self._drop_producer()  # start afresh next time
                raise

    def close(self) -> None:
        self._drop_producer()

    # -- plumbing -----------------------------------------------------------

    @property
    def _timeout_ms(self) -> int:
        return int(self.cfg.timeout_s * 1000)

    def _options(self) -> dict[str, Any]:
        timeout_ms = self._timeout_ms
        return {
            "bootstrap_servers": self.cfg.bootstrap_servers,
            "client_id": f"dsr-{self.system}",
            "request_timeout_ms": timeout_ms,
            "bootstrap_timeout_ms": timeout_ms,  # kafka-python 3
            "api_version_auto_timeout_ms": timeout_ms,  # kafka-python 2
            "allow_auto_create_topics": False,
            **self.cfg.security.client_options(),
        }

    @contextmanager
    def _consumer(self) -> Iterator[KafkaConsumer]:
        with _classified(self.system, self.name):
            consumer = KafkaConsumer(
                **_known(
                    KafkaConsumer,
                    self._options()
                    | {"group_id": None, "enable_auto_commit": False, "fetch_max_wait_ms": 100},
                )
            )
            try:
                yield consumer
            finally:
                consumer.close(autocommit=False)

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        ids = consumer.partitions_for_topic(self.name)
        if not ids:
            raise ConfigError(
                f"system {self.system!r}: topic {self.name!r} does not exist "
                "or these credentials cannot describe it"
            )
        return [TopicPartition(self.name, p) for p in sorted(ids)]

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                options = self._options() | {
                    "acks": "all",
                    "linger_ms": 0,
                    "max_block_ms": self._timeout_ms,
                }
                self._producer = KafkaProducer(**_known(KafkaProducer, options))
            return self._producer

    def _drop_producer(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=min(5.0, self.cfg.timeout_s))


def _known(client: type[Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options this kafka-python version knows (it refuses unknown ones)."""
    return {k: v for k, v in options.items() if k in client.DEFAULT_CONFIG}


class _Refusals(logging.Handler):
    """Catches a refused login that kafka-python only logs.

    kafka-python 3 retries a failed SASL handshake until its bootstrap timeout,
    then raises a bare ``KafkaTimeoutError``; the refusal itself only reaches
    kafka-python's loggers. Listening there while a client works lets a
    wrong password be reported as fatal instead of being retried forever.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: Exception | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, _REFUSED) and self.seen is None:
                self.seen = arg


@contextmanager
def _classified(system: str, topic: str) -> Iterator[None]:
    refusals = _Refusals()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(refusals)
    try:
        yield
    except ConnectorError:
        raise
    except kafka_errors.KafkaError as exc:
        raise classify(system, topic, exc, refusals.seen) from exc
    finally:
        kafka_log.removeHandler(refusals)


def classify(
    system: str, topic: str, exc: kafka_errors.KafkaError, refused: Exception | None = None
) -> ConnectorError:
    """The connector error for a Kafka error.

    A refused login or access is fatal and a missing topic a config error; an
    unreachable or slow cluster is retriable (``KafkaTimeoutError``,
    ``NoBrokersAvailable`` and every other error kafka-python marks retriable).
    Messages name the error, never a key or a value.
    """
    where = f"system {system!r}: topic {topic!r}"
    cause = refused if isinstance(exc, kafka_errors.KafkaTimeoutError) and refused else exc
    text = (str(cause).strip().splitlines() or [""])[0][:200]
    if type(cause).__name__ not in text:
        text = f"{type(cause).__name__}: {text}".rstrip(": ")
    if isinstance(cause, _REFUSED):
        return FatalError(f"{where}: the cluster refused the connector's login or access: {text}")
    if isinstance(cause, kafka_errors.UnknownTopicOrPartitionError):
        return ConfigError(f"{where}: the topic does not exist: {text}")
    if getattr(cause, "retriable", False):
        return RetriableError(f"{where}: Kafka is unreachable or slow: {text}")
    return FatalError(f"{where}: Kafka error: {text}")
