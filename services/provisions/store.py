"""The provision ledger's operations: record, read, stop and purge.

Every path in (the ``dsr.provisions`` topic, ``dsr provisions import``) ends in
``ProvisionStore.record``, so a record is validated, deduplicated and checked
against the principal's stops the same way whichever way it came. Each
operation is one short transaction on the ledger's database, and each decision
that refuses or removes something writes an audit row in that transaction.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.crypto.digests import subject_digests
from services.ledger.base import keep_rejected
from services.ledger.models import (
    OPEN_STATUSES,
    AuditEntry,
    ProvisionRecord,
    ProvisionStop,
    ProvisionSubject,
    Request,
)
from services.ledger.reconnect import reconnecting
from services.ledger.types import Action
from services.provisions.records import (
    Direction,
    Flow,
    ProvisionEvent,
    counterparty_key,
)
from services.provisions.retention import retain_until
from streams.records import Kind, utcnow

#: Requests that read the records: while one is open for a principal, theirs stay.
READING_KINDS = (Kind.THIRD_PARTY_RECORDS, Kind.THIRD_PARTY_STOP)


@dataclass(frozen=True)
class Outcome:
    """What became of one record: ``recorded``, ``duplicate`` or ``rejected`` (with why)."""

    status: Literal["recorded", "duplicate", "rejected"]
    reason_code: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Message:
    """A record's event as it came (``raw``), and where it was read
    (``topic/partition/offset``; None when not from a topic)."""

    raw: bytes
    place: str | None = None


@dataclass(frozen=True)
class Purge:
    """Records past retention removed (or, in a dry run, that would be), and those kept
    because a request about their principal is open."""

    purged: int
    held: int
    dry_run: bool = False


@reconnecting
class ProvisionStore:
    """The provision tables of one ledger database. An operation whose connection the
    database dropped runs again on a new one (``services.ledger.reconnect``)."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    # -- in -------------------------------------------------------------------
    def record(
        self,
        event: ProvisionEvent,
        *,
        via: str,
        key_id: str | None = None,
        message: Message | None = None,
    ) -> Outcome:
        """Store ``event`` once. A re-send of the same record is a duplicate (whether its
        subject comes as identifiers or as digests); another record under a known
        ``record_id`` is refused, and so is a provision to a recipient the principal has
        stopped. ``key_id``, the key that signed the event, goes into its audit rows.

        Given the ``message`` it came in, a refusal is kept with the rejected events too,
        once for that message: read again, it is refused again but not audited again."""
        try:
            with self.session() as s:
                return self._record(s, event, f"provisions:{via}", key_id, message)
        except IntegrityError:  # a concurrent insert of the same record_id won
            with self.session() as s:
                return self._record(s, event, f"provisions:{via}", key_id, message)

    def _record(
        self,
        s: Session,
        event: ProvisionEvent,
        actor: str,
        key_id: str | None,
        message: Message | None,
    ) -> Outcome:
        content = _content_digest(event)
        refuse = functools.partial(self._refuse, s, event, actor, key_id, message)
        known = s.scalar(
            select(ProvisionRecord.content_sha256).where(
                ProvisionRecord.record_id == event.record_id
            )
        )
        if known == content or known == _legacy_content_digest(event):
            return Outcome("duplicate")
        if known is not None:
            return refuse("record_id_conflict", "another record has this record_id")
        digests = event.subject.digest_set()
        if _stoppable(event) and self._stopped(s, digests, event.counterparty.name):
            return refuse(
                "provision_stopped", "the principal asked to stop provision to this recipient"
            )
        now = utcnow()
        recorded_at = (event.recorded_at or now).astimezone(UTC)
        row = ProvisionRecord(
            record_id=event.record_id,
            content_sha256=content,
            system=event.system,
            direction=event.direction,
            flow=event.flow,
            form=event.form,
            counterparty=event.counterparty.name,
            counterparty_address=event.counterparty.address,
            counterparty_representative=event.counterparty.representative,
            acquired_how=event.acquired_how,
            items=list(event.items),
            basis=event.basis,
            consent=event.consent,
            provided_on=event.provided_on,
            last_provided_on=event.last_provided_on,
            ppc_publication=event.ppc_publication,
            cross_border=event.cross_border.model_dump() if event.cross_border else None,
            note=event.note,
            recorded_at=recorded_at,
            retain_until=retain_until(event.form, recorded_at, event.last_provision),
            created_at=now,
        )
        s.add(row)
        s.flush()
        s.add_all(ProvisionSubject(record_pk=row.id, digest=d) for d in sorted(digests))
        _audit(
            s,
            None,
            actor,
            Action.PROVISION_RECORDED,
            record_id=event.record_id,
            system=event.system,
            direction=event.direction,
            flow=event.flow,
            key_id=key_id,
        )
        return Outcome("recorded")

    def _refuse(
        self,
        s: Session,
        event: ProvisionEvent,
        actor: str,
        key_id: str | None,
        read: Message | None,
        code: str,
        message: str,
    ) -> Outcome:
        trace: dict[str, Any] = {}
        if read is not None:
            errors = [{"loc": "record_id", "msg": message}]
            digest = keep_rejected(s.connection(), code, errors, read.raw, None, read.place)
            if digest is None:
                return Outcome("rejected", code, message)  # this message, read again
            trace["raw_sha256"] = digest
        _audit(
            s,
            None,
            actor,
            Action.PROVISION_REFUSED,
            reason_code=code,
            record_id=event.record_id,
            system=event.system,
            counterparty=event.counterparty.name,
            key_id=key_id,
            **trace,
        )
        return Outcome("rejected", code, message)

    @staticmethod
    def _stopped(s: Session, digests: set[str], counterparty: str) -> bool:
        if not digests:
            return False
        found = s.scalar(
            select(ProvisionStop.id)
            .where(
                ProvisionStop.subject_digest.in_(digests),
                ProvisionStop.counterparty == counterparty_key(counterparty),
            )
            .limit(1)
        )
        return found is not None

    # -- reading ----------------------------------------------------------------
    def records_of(
        self, identifiers: Mapping[str, str], now: datetime | None = None
    ) -> list[ProvisionRecord]:
        """The principal's records still within retention, oldest provision first."""
        digests = subject_digests(identifiers)
        if not digests:
            return []
        with self.session() as s:
            return list(
                s.scalars(
                    select(ProvisionRecord)
                    .where(
                        ProvisionRecord.id.in_(_records_with(digests)),
                        ProvisionRecord.retain_until > (now or utcnow()),
                    )
                    .order_by(ProvisionRecord.provided_on, ProvisionRecord.id)
                )
            )

    def stopped(self, identifiers: Mapping[str, str]) -> set[str]:
        """The recipients (as ``counterparty_key`` folds them) the principal has stopped."""
        digests = subject_digests(identifiers)
        if not digests:
            return set()
        with self.session() as s:
            return set(
                s.scalars(
                    select(ProvisionStop.counterparty).where(
                        ProvisionStop.subject_digest.in_(digests)
                    )
                )
            )

    # -- stopping -----------------------------------------------------------------
    def stop(
        self, identifiers: Mapping[str, str], request_id: str | None, *, dry_run: bool = False
    ) -> list[str]:
        """Stop provision of the principal's data to every recipient their provision
        records name; return the recipients newly stopped (a dry run changes nothing).

        A stop is kept for every digest of the principal the records know, so a later
        provision that names them by another identifier is refused too."""
        digests = subject_digests(identifiers)
        if not digests:
            return []
        with self.session() as s:
            rows = s.execute(
                select(ProvisionRecord.id, ProvisionRecord.counterparty).where(
                    ProvisionRecord.id.in_(_records_with(digests)),
                    ProvisionRecord.direction == Direction.PROVISION,
                    ProvisionRecord.flow == Flow.THIRD_PARTY,
                )
            ).all()
            if not rows:
                return []
            known = digests | set(
                s.scalars(
                    select(ProvisionSubject.digest).where(
                        ProvisionSubject.record_pk.in_([pk for pk, _ in rows])
                    )
                )
            )
            names = {counterparty_key(name): name for _, name in rows}
            have = set(
                s.execute(
                    select(ProvisionStop.subject_digest, ProvisionStop.counterparty).where(
                        ProvisionStop.subject_digest.in_(known),
                        ProvisionStop.counterparty.in_(names),
                    )
                ).tuples()
            )
            missing = [(d, c) for c in sorted(names) for d in sorted(known) if (d, c) not in have]
            newly = sorted({names[c] for _, c in missing})
            if dry_run or not missing:
                return newly
            now = utcnow()
            s.execute(
                insert(ProvisionStop),
                [
                    {
                        "subject_digest": d,
                        "counterparty": c,
                        "request_id": request_id,
                        "stopped_at": now,
                    }
                    for d, c in missing
                ],
            )
            _audit(s, request_id, "provisions", Action.PROVISION_STOPPED, recipients=newly)
            return newly

    # -- retention --------------------------------------------------------------
    def purge(self, now: datetime | None = None, *, dry_run: bool = False) -> Purge:
        """Remove records past retention, except those of a principal with an open
        ``third_party_records`` or ``third_party_stop`` request; one audit row says
        how many went and how many were kept (none when nothing went)."""
        now = now or utcnow()
        with self.session() as s:
            due = select(ProvisionRecord.id).where(ProvisionRecord.retain_until <= now)
            pending = _pending_digests(s)
            held_ids = (
                set(s.scalars(due.where(ProvisionRecord.id.in_(_records_with(pending)))))
                if pending
                else set()
            )
            ids = [pk for pk in s.scalars(due) if pk not in held_ids]
            result = Purge(len(ids), len(held_ids), dry_run)
            if dry_run or not ids:
                return result
            for chunk in _chunks(ids, 500):
                s.execute(delete(ProvisionSubject).where(ProvisionSubject.record_pk.in_(chunk)))
                s.execute(delete(ProvisionRecord).where(ProvisionRecord.id.in_(chunk)))
            _audit(s, None, "provisions", Action.RECORDS_PURGED, count=len(ids), held=len(held_ids))
            return result


def _stoppable(event: ProvisionEvent) -> bool:
    """Only provision to a third party can be stopped (Art. 35(3)); receipts and the
    flows that are not provisions are recorded whatever the principal stopped."""
    return event.direction is Direction.PROVISION and event.flow is Flow.THIRD_PARTY


def _records_with(digests: set[str]) -> Any:
    return select(ProvisionSubject.record_pk).where(ProvisionSubject.digest.in_(digests))


def _pending_digests(s: Session) -> set[str]:
    """Digests of every identifier (given or discovered) of open requests that read
    provision records."""
    rows = s.scalars(
        select(Request.subject_digests).where(
            Request.kind.in_([k.value for k in READING_KINDS]),
            Request.status.in_([st.value for st in OPEN_STATUSES]),
        )
    )
    return {digest for digests in rows for digest in digests or ()}


def _content_digest(event: ProvisionEvent) -> str:
    """What tells a re-send from another record: the record in its digest form, so that
    sending it with identifiers or with their digests is sending the same record."""
    return hashlib.sha256(event.digested().model_dump_json().encode()).hexdigest()


def _legacy_content_digest(event: ProvisionEvent) -> str:
    """``content_sha256`` as kept before a subject could come as digests (over the event
    as sent, identifiers and all), so that re-sends of those records stay duplicates."""
    legacy = event.model_dump_json(exclude={"subject": {"digests"}})
    return hashlib.sha256(legacy.encode()).hexdigest()


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _audit(s: Session, request_id: str | None, actor: str, action: Action, **detail: Any) -> None:
    """One append-only audit row, as the ledger writes them (never an identifier)."""
    s.execute(
        insert(AuditEntry).values(
            at=utcnow(), request_id=request_id, actor=actor, action=action, detail=detail
        )
    )
