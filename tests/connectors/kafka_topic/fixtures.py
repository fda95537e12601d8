"""A compacted-style topic of customer profiles on the real embedded broker.

Every test gets a fresh topic (three partitions) on one broker shared by the
session. Profiles are keyed ``customer:<id>`` and seeded with several updates
per key, so only the latest value of each key is current; Carol's latest
record is a tombstone. ``break_transiently`` pauses the broker (SIGSTOP): it
still accepts connections but answers nothing, so every call times out, and it
resumes with its data intact.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.kafka_topic import KafkaTopicConnector
from connectors.testing import Harness, Seeded
from services.broker import EmbeddedBroker, create_topics
from streams.records import Change
from streams.topics import TopicSpec

ALICE = {"customer_id": "1001"}
BOB = {"customer_id": "1002"}
CAROL = {"customer_id": "1003"}  # erased earlier: her latest record is a tombstone
NOBODY = {"customer_id": "4242"}

PARTITIONS = 3
KEY = {"identifier": "customer_id", "format": "customer:{customer_id}"}
#: Short enough that a paused broker fails a call quickly, long enough for a busy machine.
TIMEOUT_S = 1.0

ALICE_NOW: dict[str, Any] = {
    "customer_id": "1001",
    "name": "Alice Example",
    "email": "alice@example.com",
    "phone": "+81-3-0000-0001",
    "plan": "gold",
    "processing_suspended": False,
}
BOB_NOW: dict[str, Any] = {
    "customer_id": "1002",
    "name": "Bob Other",
    "email": "bob@example.net",
    "phone": "+81-6-0000-0002",
    "plan": "basic",
    "processing_suspended": False,
}


def key_of(customer: Mapping[str, str]) -> bytes:
    return f"customer:{customer['customer_id']}".encode()


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def json(self) -> Any:
        return None if self.value is None else json.loads(self.value)


class ProfilesTopic:
    """A fresh topic, a producer to seed it, and a raw view of everything in it."""

    def __init__(self, broker: EmbeddedBroker, producer: KafkaProducer) -> None:
        self.broker = broker
        self.producer = producer
        self.name = f"customer-profiles-{uuid.uuid4().hex[:10]}"
        create_topics(broker.bootstrap, [TopicSpec(self.name, PARTITIONS, "test")])
        self.connectors: list[KafkaTopicConnector] = []

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.broker.bootstrap,
            "topic": self.name,
            "key": KEY,
            "value_format": "json",
            "correctable": ["name", "email", "phone"],
            "suspension": {"field": "processing_suspended"},
            "timeout_s": TIMEOUT_S,
            **overrides,
        }

    def connector(self, **overrides: Any) -> KafkaTopicConnector:
        connector = KafkaTopicConnector("profiles", self.config(**overrides))
        self.connectors.append(connector)
        return connector

    def close(self) -> None:
        for connector in self.connectors:
            connector.close()

    # -- writing, as the system's own producers do ----------------------------

    def send(
        self,
        key: bytes,
        value: Mapping[str, Any] | bytes | None,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue one record; ``flush()`` sends the queue as few batches."""
        raw = json.dumps(value).encode() if isinstance(value, Mapping) else value
        self.producer.send(self.name, key=key, value=raw, partition=partition, headers=headers)

    def flush(self) -> None:
        self.producer.flush(timeout=10)

    def seed(self) -> None:
        """Alice, Bob and Carol, each updated several times; Carol then erased."""
        alice, bob = ALICE_NOW, BOB_NOW
        self.send(key_of(ALICE), {**alice, "name": "Alice Old", "email": "alice@old.example"})
        self.send(key_of(BOB), {**bob, "name": "Bob Old"})
        self.send(key_of(ALICE), {**alice, "phone": "+81-3-9999-0001"})
        self.send(key_of(CAROL), {"customer_id": "1003", "name": "Carol Gone"})
        self.send(key_of(BOB), bob)
        self.send(b"customer:10010", {"customer_id": "10010", "name": "Dave Prefix"})
        self.send(key_of(ALICE), alice, headers=[("content-type", b"application/json")])
        self.send(key_of(CAROL), None)
        self.flush()

    # -- reading everything, past any end offset the broker reports -----------

    def records(self) -> list[Record]:
        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, group_id=None)
        try:
            tps = [TopicPartition(self.name, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            start, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
            todo = {tp for tp in tps if end[tp] > start[tp]}
            out: list[Record] = []
            deadline = time.monotonic() + 10
            while todo and time.monotonic() < deadline:
                for tp, messages in consumer.poll(timeout_ms=200).items():
                    out += [
                        Record(tp.partition, m.offset, m.key, m.value, list(m.headers or []))
                        for m in messages
                    ]
                for tp in list(todo):
                    high = max(end[tp], consumer.highwater(tp) or 0)
                    if consumer.position(tp) >= high:
                        todo.discard(tp)
            assert not todo, "the topic was not read to its end"
            return sorted(out, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close(autocommit=False)

    def latest(self, key: bytes) -> dict[int, Record]:
        """The newest record of ``key`` in each partition that has one."""
        return {r.partition: r for r in self.records() if r.key == key}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The broker stops answering (it keeps its data), then carries on."""
        self.broker.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.broker.process.send_signal(signal.SIGCONT)


class KafkaTopicHarness(Harness):
    """The profiles topic for the conformance kit."""

    connector_class = KafkaTopicConnector
    system = "profiles"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        super().__init__(request, tmp_path)
        self.topic = ProfilesTopic(
            request.getfixturevalue("topic_broker"), request.getfixturevalue("topic_producer")
        )
        request.addfinalizer(self.topic.close)

    def config(self) -> dict[str, Any]:
        return self.topic.config()

    def seed(self) -> Seeded:
        self.topic.seed()
        return Seeded(
            subject=dict(ALICE),
            other=dict(BOB),
            correction=Change(field="name", value="Alice Corrected"),
            unknown=dict(NOBODY),
        )

    def invalid_configs(self) -> list[Mapping[str, Any]]:
        good = self.topic.config()
        return [
            {**good, "key": {"identifier": "customer_id", "format": "customer:{email}"}},
            {**good, "key": {"identifier": "customer_id", "format": "customer:{}"}},
            {**good, "key": {"identifier": "customer_id", "format": "all-customers"}},
            {**good, "topic": "no spaces allowed"},
            {**good, "bootstrap_servers": ["localhost"]},
            {**good, "value_format": "avro"},
            {**good, "security": {"security_protocol": "SASL_SSL"}},
            {**good, "correctable": ["processing_suspended"]},
            {**good, "timeout_s": 0},
            {**good, "partitions": 3},
        ]

    def break_transiently(self) -> contextlib.AbstractContextManager[None]:
        return self.topic.paused()


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="session")
def topic_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the topic connector's own: its harness pauses it."""
    broker = EmbeddedBroker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def topic_producer(topic_broker: EmbeddedBroker) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=topic_broker.bootstrap, linger_ms=20)
    yield producer
    producer.close()


@pytest.fixture
def profiles(
    topic_broker: EmbeddedBroker, topic_producer: KafkaProducer
) -> Iterator[ProfilesTopic]:
    """A fresh, seeded profiles topic."""
    topic = ProfilesTopic(topic_broker, topic_producer)
    topic.seed()
    yield topic
    topic.close()
