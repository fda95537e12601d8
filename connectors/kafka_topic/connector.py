"""The Kafka topic connector: per-customer state in a compacted topic.

A compacted topic keeps, for each key, at least its latest record; the latest
value wins and a tombstone (a record whose value is null) means deleted. Every
operation first reads the topic from its beginning to its end offsets at call
time and keeps the newest record of each of the subject's keys in each
partition. That read takes time in proportion to the topic, capped by
``timeout_s`` (a ``RetriableError`` after it); the connector is meant for
state topics, not for event logs.

Writes go to the partition the key's latest record is in, so they supersede it
whatever partitioner the topic's producers use:

- correction and suspension write the latest value again, changed (its
  headers are kept); the topic's consumers must honour the suspension field;
- erasure writes a tombstone. Compaction removes the older values of the key
  later (when the log cleaner next runs on the partition), and removes the
  tombstone itself after the topic's ``delete.retention.ms``. Until then a
  reader from the beginning still sees the older values. On a topic whose
  ``cleanup.policy`` is not ``compact`` they stay until retention deletes
  them. What the topic's consumers built from it (state stores, caches,
  mirrors) are systems of their own.

A key whose latest record is a tombstone is an unknown subject. Correctness
does not depend on compaction having run: only the latest record counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import Connector, Identifiers
from connectors.errors import ConnectorError, FatalError
from connectors.kafka_topic.client import Latest, Topic, Write
from connectors.kafka_topic.config import KafkaTopicConfig
from connectors.results import CheckResult, OperationResult
from streams.records import Change, CorrectionReport, Kind


class KafkaTopicConnector(Connector[KafkaTopicConfig]):
    """JSON values in a compacted Kafka topic, keyed by one of the subject's identifiers
    (or by several together: a composite key)."""

    name = "kafka_topic"
    Config = KafkaTopicConfig
    capabilities = frozenset({Kind.DISCLOSURE, Kind.CORRECTION, Kind.SUSPENSION, Kind.ERASURE})

    def __init__(self, system: str, config: Mapping[str, Any] | KafkaTopicConfig) -> None:
        super().__init__(system, config)
        self._topic = Topic(system, self.config)

    def __repr__(self) -> str:
        return f"<KafkaTopicConnector system={self.system!r} topic={self.config.topic!r}>"

    @classmethod
    def kinds_for(cls, config: KafkaTopicConfig) -> frozenset[Kind]:
        kinds = {Kind.DISCLOSURE, Kind.ERASURE}
        if config.correctable:
            kinds.add(Kind.CORRECTION)
        if config.suspension is not None:
            kinds.add(Kind.SUSPENSION)
        return frozenset(kinds)

    def check(self) -> CheckResult:
        try:
            return CheckResult(True, self._topic.describe())
        except ConnectorError as exc:
            return CheckResult(False, str(exc))

    def close(self) -> None:
        self._topic.close()

    # -- operations ---------------------------------------------------------

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        records = [
            {**self._decode(latest), "_source": self.config.topic}
            for latest in self._live(identifiers)
        ]
        return OperationResult(
            records=records, fields=sorted({k for r in records for k in r} - {"_source"})
        )

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        """Write the latest value again with the correctable fields changed.

        A correctable field the value lacks is added. Each change is reported
        as ``{"table": topic, "field", "old", "new"}``, the shape responses
        name sources by.
        """
        self._require(Kind.CORRECTION)
        wanted = {c.field: c.value for c in changes}
        correctable = [f for f in wanted if f in self.config.correctable]
        entries: list[dict[str, Any]] = []
        writes: list[Write] = []
        held = set(self.config.correctable)
        for latest in self._live(identifiers):
            value = self._decode(latest)
            held.update(value)
            diff = {f: wanted[f] for f in correctable if not _holds(value, f, wanted[f])}
            for f, new in diff.items():
                entry = {"table": self.config.topic, "field": f, "old": value.get(f), "new": new}
                if entry not in entries:
                    entries.append(entry)
            if diff:
                writes.append(
                    Write(latest.key, latest.partition, _encode(value | diff), latest.headers)
                )
        if not dry_run:
            self._topic.write(writes)
        return OperationResult(
            changed=len(writes),
            fields=sorted({e["field"] for e in entries}),
            correction=CorrectionReport.of(entries, wanted, held, correctable),
            dry_run=dry_run,
        )

    def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.SUSPENSION)
        assert self.config.suspension is not None
        flag = self.config.suspension.field
        writes = []
        for latest in self._live(identifiers):
            value = self._decode(latest)
            if value.get(flag) is not True:
                new = _encode({**value, flag: True})
                writes.append(Write(latest.key, latest.partition, new, latest.headers))
        if not dry_run:
            self._topic.write(writes)
        return OperationResult(
            changed=len(writes),
            fields=[flag] if writes else [],
            details={"topics": [self._action("flag", len(writes), field=flag)]},
            dry_run=dry_run,
        )

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        """Write a tombstone for each of the subject's keys that has a live value.

        ``changed`` counts those keys. Erasing again changes nothing, since
        their latest records are then tombstones. The older values stay in the
        log until compaction removes them, so all of them are ``pending_purge``:
        the principal is told that earlier copies remain until then. The
        tombstones stay for the topic's ``delete.retention.ms`` after that (see
        the module docstring).
        """
        live = self._live(identifiers)
        if not dry_run:
            self._topic.write([Write(latest.key, latest.partition, None) for latest in live])
        fields = {f for latest in live for f in _fields(latest)}
        erased = len({latest.key for latest in live})
        return OperationResult(
            changed=erased,
            pending_purge=erased,
            fields=sorted(fields),
            details={"topics": [self._action("tombstone", len(live))]},
            dry_run=dry_run,
        )

    # -- plumbing -----------------------------------------------------------

    def _require(self, kind: Kind) -> None:
        if not self.supports(kind):
            raise self._not_supported(kind)

    def _keys(self, identifiers: Identifiers) -> list[bytes]:
        keys: list[bytes] = []
        for spec in self.config.key:
            key = spec.render(identifiers)
            if key is not None and key not in keys:
                keys.append(key)
        return keys

    def _live(self, identifiers: Identifiers) -> list[Latest]:
        """The subject's latest records that are not tombstones, in key order.

        Normally one per key; a key written to several partitions (by a custom
        partitioner) has one per partition, since compaction keeps each.
        """
        keys = self._keys(identifiers)
        if not keys:
            return []
        found = self._topic.scan(keys)
        order = sorted(found, key=lambda kp: (keys.index(kp[0]), kp[1]))
        return [found[kp] for kp in order if found[kp].value is not None]

    def _decode(self, latest: Latest) -> dict[str, Any]:
        value = _object(latest.value)
        if value is None:
            raise FatalError(
                f"system {self.system!r}: topic {self.config.topic!r} partition "
                f"{latest.partition} offset {latest.offset}: the value is not a JSON object "
                "(value_format: json)"
            )
        return value

    def _action(self, action: str, records: int, **extra: str) -> dict[str, Any]:
        return {"topic": self.config.topic, "action": action, **extra, "records": records}


def _object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:  # not UTF-8, or not JSON
        return None
    return value if isinstance(value, dict) else None


def _fields(latest: Latest) -> list[str]:
    """The fields of a value, for the record of what was erased; none if it is not JSON."""
    return list(_object(latest.value) or {})


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _holds(value: dict[str, Any], field: str, new: Any) -> bool:
    """Whether ``value`` already has ``field`` set to ``new`` (an absent field holds null).

    Compared as JSON, so ``1``, ``1.0`` and ``true`` are different values.
    """
    old = value.get(field)
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
