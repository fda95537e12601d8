"""Dead letters, for operators: kept in the ledger, listed, and sent back.

Two kinds of event end up on ``dsr.deadletter``:

- a **task** whose connector kept failing until its attempts ran out (from a connector
  runner): its request completed without that system. Redriving it, once the system
  is fixed, reopens the task in the ledger (and the request, if it had completed) and
  sends the request back to fan-out, which sends its pending tasks again; the request
  then completes with the next response revision.
- an **event a worker could not handle** (from intake, fan-out or aggregation): it goes
  back to the topic it came from, with its original headers. A signed event (a request,
  a decision, a provision record) is signed again by the operator's key when one is
  given, since its own signature may be older than the freshness window
  (``services.signing``); the operator's key then answers for it in the audit trail.

The topic is only the way in: a worker records each letter in the ledger as it
arrives (``record``), so restarting the broker, which keeps nothing on disk, or ``dsr
up`` loses none. What may name someone (the original event, its headers, the error's
detail) never crosses the topic in clear: a letter (``letter``) carries the original's
SHA-256 and the rest sealed to the pipeline's public key (``sealed``), or not at all.
The ledger keeps it sealed under the request's data key, or not at all; what the
listing shows (ids, source, reason) names nobody.

Redrive is idempotent: each dead letter is redriven at most once (its ledger row is
marked, atomically), and the pipeline's own dedupe makes a re-sent event harmless.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer
from pydantic import ValidationError

from services.crypto import CryptoError
from services.crypto.sealing import Sealer
from services.ledger import Ledger
from services.ledger.models import DeadLetter
from services.signing import SIGNATURE_HEADER, SIGNING_HEADERS, Signer
from streams import topics
from streams.records import Accepted, AcceptedVia, DeadLetterEvent, dump

#: The topic (in ``streams.topics``) a worker stage's dead letters go back to.
STAGE_TOPICS = {
    "intake": "REQUESTS",
    "decisions": "DECISIONS",
    "fanout": "ACCEPTED",
    "aggregate": "RESULTS",
    "provisions": "PROVISIONS",
    "notices": "NOTICES",
}
_CODE = re.compile(r"[^a-z0-9]+")
#: The name a letter's ``sealed`` value is sealed under (authenticated with it).
SEALED_NAME = "DeadLetter"


def letter(
    source: str,
    error: str,
    original: bytes,
    *,
    sealer: Sealer | None,
    attempts: int,
    headers: dict[str, str] | None = None,
    detail: str = "",
    request_id: str | None = None,
    task_id: str | None = None,
    error_code: str | None = None,
) -> DeadLetterEvent:
    """A dead letter: what went wrong, ``original``'s digest, and the original with its
    headers and the error's detail sealed to the pipeline's public key (not kept without
    pipeline keys)."""
    sealed = None
    if sealer is not None and sealer.pipeline is not None:
        kept = {
            "original": original.decode("utf-8", "replace"),
            "headers": headers or {},
            "detail": detail,
        }
        sealed = sealer.seal_to_pipeline(SEALED_NAME, json.dumps(kept).encode())
    return DeadLetterEvent(
        source=source[:256],
        error=error[:2000],
        attempts=attempts,
        request_id=request_id[:128] if request_id else None,
        digest=hashlib.sha256(original).hexdigest(),
        task_id=task_id,
        error_code=error_code,
        sealed=sealed,
    )


@dataclass(frozen=True)
class Letter:
    """A dead letter as it arrives on the topic."""

    event: DeadLetterEvent
    at: datetime
    key: str | None = None
    #: A digest of the letter's bytes and timestamp: the same for a redelivered copy.
    letter_id: str = ""

    @classmethod
    def parse(cls, value: bytes, timestamp_ms: int, key: bytes | None = None) -> Letter:
        """The letter in ``value``; one that is not a valid dead letter is kept all the
        same, saying so, with the digest of what arrived."""
        try:
            event = DeadLetterEvent.model_validate_json(value)
        except ValidationError:
            event = DeadLetterEvent(
                source="",
                error="the dead letter itself is not valid",
                attempts=0,
                digest=hashlib.sha256(value).hexdigest(),
            )
        digest = hashlib.sha256(value + b"\0" + str(timestamp_ms).encode()).hexdigest()
        return cls(
            event,
            datetime.fromtimestamp(timestamp_ms / 1000, UTC),
            key.decode("utf-8", "replace") if key else None,
            digest[:32],
        )

    @property
    def source(self) -> str:
        return self.event.source

    @property
    def system(self) -> str | None:
        if self.source.startswith(topics.TASKS_PREFIX):
            return self.source.removeprefix(topics.TASKS_PREFIX)
        return None

    @property
    def request_id(self) -> str | None:
        return self.event.request_id

    @property
    def task_id(self) -> str | None:
        return self.event.task_id or None

    @property
    def topic(self) -> str:
        """Where it goes back to (its source, when that is unknown)."""
        stage = STAGE_TOPICS.get(self.source)
        return str(getattr(topics, stage)) if stage else self.source

    @property
    def reason_code(self) -> str:
        """``retries_exhausted``, ``invalid_task``, or the worker's error as a code."""
        if self.event.error_code:
            return self.event.error_code
        if self.system is not None:
            return "invalid_task"
        code = _CODE.sub("_", self.event.error.lower()).strip("_")
        return code[:64] or "unknown"

    def row(self) -> DeadLetter:
        """The ledger row, without what may name someone (``kept``)."""
        return DeadLetter(
            id=self.letter_id,
            topic=self.topic,
            source=self.source,
            key=self.key,
            reason_code=self.reason_code,
            reason=self.event.error[:300],
            request_id=self.request_id,
            task_id=self.task_id,
            attempts=self.event.attempts,
            at=self.at,
        )

    def kept(self, sealer: Sealer | None) -> dict[str, Any] | None:
        """What the ledger keeps sealed, opened from ``sealed`` with the pipeline's key:
        everything needed to send the event back; None if the letter kept nothing."""
        if sealer is None or sealer.pipeline is None or self.event.sealed is None:
            return None
        where = f"dead letter {self.letter_id}"
        try:
            kept = json.loads(sealer.open_from_pipeline(SEALED_NAME, self.event.sealed, where))
        except (CryptoError, ValueError):
            return None
        return kept if isinstance(kept, dict) else None


def record(ledger: Ledger, value: bytes, timestamp_ms: int, key: bytes | None = None) -> bool:
    """Keep the dead letter ``value`` in the ledger; False if it was there already."""
    parsed = Letter.parse(value, timestamp_ms, key)
    return ledger.record_dead_letter(parsed.row(), parsed.kept(ledger.sealer))


def listed(
    ledger: Ledger, system: str | None = None, request_id: str | None = None
) -> list[DeadLetter]:
    """The ledger's dead letters, oldest first; a system's tasks, or a request's."""
    topic = topics.tasks_topic(system) if system is not None else None
    return ledger.dead_letters(topic, request_id)


def summary(row: DeadLetter) -> dict[str, Any]:
    """What ``dsr dlq list`` shows: never the original event, which may hold personal data."""
    return {
        "letter": row.id,
        "at": _iso(row.at),
        "source": row.source.removeprefix(topics.TASKS_PREFIX),
        "request_id": row.request_id,
        "attempts": row.attempts,
        "error_code": row.reason_code,
        "error": row.reason,
        "redriven_at": _iso(row.redriven_at) if row.redriven_at else None,
    }


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
    signer: Signer | None = None,
) -> list[Redriven]:
    """Send each letter back where it came from, once; say what happened to each. A
    signed original is signed again by ``signer``, if given."""
    done = []
    for row in letters:
        target, why_not = _target(row)
        kept: dict[str, Any] = {}
        if target is not None and row.sealed is not None:
            try:
                kept = ledger.dead_letter_kept(row) or {}
            except (CryptoError, LookupError, ValueError) as exc:
                target, why_not = None, f"its original event does not open: {exc}"
        if target is not None and not dry_run:
            why_not = _claim(row, ledger, request_timeout)
        if target is None or why_not:
            done.append(Redriven(row, None, why_not))
            continue
        if not dry_run:
            _send(row, target, kept, producer, signer)
        done.append(Redriven(row, target))
    producer.flush()
    return done


def _target(row: DeadLetter) -> tuple[str | None, str]:
    if row.redriven_at is not None:
        return None, "already redriven"
    if row.source.startswith(topics.TASKS_PREFIX):
        if row.task_id is None or row.request_id is None:
            return None, "not a valid task: fix the producer, then resend it"
        return topics.ACCEPTED, ""  # fan-out sends the reopened task again
    if row.source not in STAGE_TOPICS:
        return None, f"unknown source {row.source!r}"
    if row.sealed is None:
        return None, "its original event was not kept (no data key to seal it under)"
    return row.topic, ""


def _claim(row: DeadLetter, ledger: Ledger, request_timeout: timedelta) -> str:
    """Mark the letter redriven in the ledger; a reason if it must not go ahead."""
    if row.task_id is not None and row.source.startswith(topics.TASKS_PREFIX):
        return ledger.reopen_task(row.task_id, row.id, request_timeout) or ""
    return ledger.claim_redrive(row.id, row.request_id, row.source) or ""


def _send(
    row: DeadLetter,
    target: str,
    kept: dict[str, Any],
    producer: KafkaProducer,
    signer: Signer | None,
) -> None:
    if row.source.startswith(topics.TASKS_PREFIX):
        assert row.request_id is not None
        again = Accepted(request_id=row.request_id, via=AcceptedVia.REDRIVE)
        producer.send(target, key=row.request_id.encode(), value=dump(again))
        return
    key = row.request_id.encode() if row.request_id else None
    original = str(kept.get("original", "")).encode()
    producer.send(target, key=key, value=original, headers=resent_headers(kept, signer))


def resent_headers(kept: dict[str, Any], signer: Signer | None) -> list[tuple[str, bytes]]:
    """The headers a redriven event goes back with: its own, but a signed one signed
    again, now, by ``signer`` when given."""
    headers = {str(k): str(v).encode() for k, v in (kept.get("headers") or {}).items()}
    if signer is not None and SIGNATURE_HEADER in headers:
        fresh = dict(signer.headers(str(kept.get("original", "")).encode()))
        headers = {k: v for k, v in headers.items() if k not in SIGNING_HEADERS} | fresh
    return list(headers.items())


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat(timespec="seconds")
