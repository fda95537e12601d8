"""The dead-letter topic, for operators: list what is there, and send it back.

Two kinds of event end up on ``dsr.deadletter``:

- a **task** whose connector kept failing until its attempts ran out (from a connector
  runner): its request completed without that system. Redriving it, once the system
  is fixed, reopens the task in the ledger (and the request, if it had completed) and
  sends the task again; the request then completes with the next response revision.
- an **event a worker could not handle** (from intake, fan-out or aggregation): it goes
  back to the topic it came from, with its original headers (a request's signature).

Redrive is idempotent: each dead letter is redriven at most once (the ledger's audit
trail records it), and the pipeline's own dedupe makes a re-sent event harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer

from services.client import read_all, request_key
from services.ledger import Ledger
from streams import topics

#: Where a worker stage's dead letters go back to.
STAGE_TOPICS = {
    "intake": topics.REQUESTS,
    "decisions": topics.DECISIONS,
    "fanout": topics.ACCEPTED,
    "aggregate": topics.RESULTS,
    "provisions": topics.PROVISIONS,
    "notices": topics.NOTICES,
}


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    at: datetime
    body: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        """The letter's identity, as the audit trail records it."""
        return f"{topics.DEAD_LETTER}:{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        return str(self.body.get("source", ""))

    @property
    def system(self) -> str | None:
        if self.source.startswith(topics.TASKS_PREFIX):
            return self.source.removeprefix(topics.TASKS_PREFIX)
        return None

    @property
    def original(self) -> bytes:
        return str(self.body.get("original", "")).encode()

    @property
    def request_id(self) -> str | None:
        rid = self.body.get("request_id")
        if isinstance(rid, str):
            return rid
        if self.source == "fanout":
            return self.original.decode() or None
        key = request_key(self.original)
        return key.decode() if key else None

    def summary(self) -> dict[str, Any]:
        """What ``dsr dlq list`` shows: never the original event, which may hold personal data."""
        return {
            "letter": f"{self.partition}:{self.offset}",
            "at": self.at.isoformat(timespec="seconds"),
            "source": self.system or self.source,
            "request_id": self.request_id,
            "attempts": self.body.get("attempts"),
            "error_code": self.body.get("error_code"),
            "error": str(self.body.get("error", ""))[:300],
        }


def read(bootstrap: str) -> list[DeadLetter]:
    """Every dead letter on the topic, oldest first (no consumer group, nothing committed)."""
    return [_letter(r.partition, r) for r in read_all(bootstrap, [topics.DEAD_LETTER])]


def _letter(partition: int, record: Any) -> DeadLetter:
    try:
        body = json.loads(record.value)
    except ValueError:
        body = {"error": "the dead letter itself is not JSON"}
    at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return DeadLetter(partition, record.offset, at, body if isinstance(body, dict) else {})


def matching(
    letters: Iterable[DeadLetter], system: str | None = None, request_id: str | None = None
) -> list[DeadLetter]:
    return [
        d
        for d in letters
        if (system is None or d.system == system)
        and (request_id is None or d.request_id == request_id)
    ]


@dataclass(frozen=True)
class Redriven:
    letter: DeadLetter
    #: Where it went, or None if it was skipped.
    topic: str | None
    reason: str = ""


def redrive(
    letters: Iterable[DeadLetter],
    ledger: Ledger,
    producer: KafkaProducer,
    request_timeout: timedelta,
    dry_run: bool = False,
) -> list[Redriven]:
    """Send each letter back where it came from, once; say what happened to each."""
    done = []
    for letter in letters:
        target, why_not = _target(letter)
        if target is not None and not dry_run:
            why_not = _claim(letter, ledger, request_timeout)
        if target is None or why_not:
            done.append(Redriven(letter, None, why_not or ""))
            continue
        if not dry_run:
            key = letter.request_id.encode() if letter.request_id else None
            headers = [(k, str(v).encode()) for k, v in (letter.body.get("headers") or {}).items()]
            producer.send(target, key=key, value=letter.original, headers=headers)
        done.append(Redriven(letter, target))
    producer.flush()
    return done


def _target(letter: DeadLetter) -> tuple[str | None, str]:
    if letter.system is not None:
        if not letter.body.get("task_id"):
            return None, "not a valid task: fix the producer, then resend it"
        return topics.tasks_topic(letter.system), ""
    if letter.source in STAGE_TOPICS:
        return STAGE_TOPICS[letter.source], ""
    return None, f"unknown source {letter.source!r}"


def _claim(letter: DeadLetter, ledger: Ledger, request_timeout: timedelta) -> str:
    """Record the redrive in the ledger; a reason if it must not go ahead."""
    if letter.system is not None:
        return ledger.reopen_task(str(letter.body["task_id"]), letter.ref, request_timeout) or ""
    if not ledger.claim_redrive(letter.ref, letter.request_id, letter.source):
        return "already redriven"
    return ""
