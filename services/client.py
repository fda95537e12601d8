"""Talk to the pipeline's topics from outside it: submit requests, watch responses.

Used by ``dsr submit``, ``dsr demo`` and the integration tests. The watcher
assigns partitions directly (no consumer group), so it starts reading at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.crypto.sealing import RequestSealer
from services.settings import Settings
from services.signing import Keyring, Signer
from streams import topics


def request_key(raw: bytes) -> bytes | None:
    try:
        value = json.loads(raw).get("request_id")
    except Exception:  # noqa: BLE001 - a malformed event still goes in; intake rejects it
        return None
    return value.encode() if isinstance(value, str) else None


def read_all(bootstrap: str, names: Iterable[str], since: datetime | None = None) -> list[Any]:
    """Every record now on the ``names`` topics (appended at or after ``since``, when
    given), in offset order per partition (no consumer group, nothing committed)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    try:
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        if since is None:
            consumer.seek_to_beginning(*partitions)
        else:
            ms = int(since.timestamp() * 1000)
            found = consumer.offsets_for_times({tp: ms for tp in partitions})
            for tp in partitions:
                hit = found.get(tp)  # none later: None (Kafka) or a timestamp of -1 (Tansu)
                later = hit is not None and hit.timestamp >= 0
                consumer.seek(tp, hit.offset if later else ends[tp])
        records: list[Any] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for batch in consumer.poll(timeout_ms=1000).values():
                records += batch
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    finally:
        consumer.close()


def _decode(value: bytes) -> dict[str, Any]:
    try:
        body = json.loads(value)
    except ValueError:
        return {"raw": value.decode("utf-8", "replace")}
    return body if isinstance(body, dict) else {"raw": body}


class Submitter:
    """Send request events, signed with ``signer`` (see ``services/signing.py``)."""

    def __init__(
        self, bootstrap: str, signer: Signer | None = None, sealer: RequestSealer | None = None
    ) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self.signer = signer
        self.sealer = sealer

    @classmethod
    def from_settings(
        cls, settings: Settings, bootstrap: str, key_id: str | None = None
    ) -> Submitter:
        """Signed with ``key_id``, or the configured producer key, when intake requires
        signatures, and requests sealed to the pipeline's public key when the pipeline
        seals (``DSR_SEAL_EVENTS``): a producer holds no key that opens anything."""
        sealer = RequestSealer.from_settings(settings)
        if not settings.require_signatures:
            return cls(bootstrap, sealer=sealer)
        keyring = Keyring.load(settings.signing_keys_path)
        return cls(bootstrap, keyring.signer(key_id or settings.producer_key_id), sealer)

    def submit(self, raw: bytes, topic: str | None = None) -> None:
        """Send one event (a request, or a decision to ``topics.DECISIONS``), a request
        sealed, and signed."""
        topic = topic or topics.REQUESTS
        if self.sealer is not None and topic == topics.REQUESTS:
            raw = self.sealer.seal_request(raw)
        headers = self.signer.headers(raw) if self.signer else []
        self.producer.send(topic, key=request_key(raw), value=raw, headers=headers)

    def submit_all(self, events: Iterable[bytes]) -> int:
        n = 0
        for raw in events:
            self.submit(raw)
            n += 1
        self.producer.flush()
        return n

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


#: How long a fetch waits on the broker for more data: short, so that a response is seen
#: as soon as it is on the topic of the embedded broker, which looks for data again only
#: when half the wait is over (kafka-python's default, 500 ms, would add to latency
#: there; Apache Kafka answers as soon as data arrives, whatever the wait).
FETCH_MAX_WAIT_MS = 20


class Watcher:
    """Read one or more topics from the beginning, without joining a group."""

    def __init__(
        self, bootstrap: str, names: Iterable[str], fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
    ) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=200,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        parts = [
            TopicPartition(t, p)
            for t in names
            for p in sorted(self.consumer.partitions_for_topic(t) or {0})
        ]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)

    def poll(self, timeout_s: float = 0.2) -> Iterator[tuple[str, dict[str, Any]]]:
        batches = self.consumer.poll(timeout_ms=int(timeout_s * 1000))
        for tp, records in batches.items():
            for r in records:
                yield tp.topic, _decode(r.value)

    def collect(self, until: Any, timeout_s: float) -> list[tuple[str, dict[str, Any]]]:
        """Poll until ``until(seen)`` is true or the time is up."""
        seen: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(seen):
            seen.extend(self.poll())
        return seen

    def close(self) -> None:
        self.consumer.close()


def responses(
    bootstrap: str,
    request_id: str | None = None,
    *,
    follow: bool = False,
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
) -> Iterator[dict[str, Any]]:
    """The response events on ``dsr.responses`` (of ``request_id`` only, when given), in
    the order they were sent per partition. With ``follow``, keep waiting for new ones,
    each fetch waiting up to ``fetch_max_wait_ms``; for one request, stop at its first
    response. Re-sends of a response carry the same ``(request_id, revision)``: each is
    given once."""
    seen: set[tuple[str, int]] = set()

    def fresh(body: dict[str, Any]) -> bool:
        if request_id is not None and body.get("request_id") != request_id:
            return False
        key = (str(body.get("request_id")), int(body.get("revision") or 1))
        if key in seen:
            return False
        seen.add(key)
        return True

    if not follow:
        for record in read_all(bootstrap, [topics.RESPONSES]):
            if fresh(body := _decode(record.value)):
                yield body
        return
    watcher = Watcher(bootstrap, [topics.RESPONSES], fetch_max_wait_ms)
    try:
        while True:
            for _, body in watcher.poll(timeout_s=1.0):
                if fresh(body):
                    yield body
                    if request_id is not None:
                        return
    finally:
        watcher.close()
