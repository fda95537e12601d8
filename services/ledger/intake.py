"""Intake: rejected events, and request events admitted: new, duplicates, releases of
held requests, holds and conflicting re-sends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from services.crypto.digests import subject_digests
from services.crypto.errors import CryptoError
from services.ledger import resends
from services.ledger.base import (
    EVENT_FIELD,
    VERIFICATION_HOLD,
    LedgerBase,
    _audit_row,
    as_utc,
    in_session,
    keep_rejected,
    take,
    taken,
)
from services.ledger.models import Rejected, Request, RequestStatus
from services.ledger.statements import (
    INSERT_AUDITS,
    INSERT_NEW_REQUESTS,
    SELECT_REQUEST_IDS,
    execute_many,
    hold_requests,
    insert_new,
)
from services.ledger.types import Action, Admission, Admitted, Arrival
from streams.records import RequestEvent, utcnow


class Intake(LedgerBase):
    """Rejected events, and admitting request events."""

    def record_rejected(
        self,
        reason_code: str,
        errors: list[dict[str, Any]],
        raw: bytes,
        request_id: str | None,
        place: str | None = None,
        **detail: Any,
    ) -> bool:
        """Keep a trace of a rejected event: its reason and a hash, never its content;
        ``detail`` (e.g. the signing key) goes into its audit row. ``place`` is where its
        message was read (``topic/partition/offset``): the same event there is the same
        message, read again, and recorded once. True if it was recorded now."""
        with self.engine.begin() as conn:
            digest = keep_rejected(conn, reason_code, errors, raw, request_id, place)
            if digest is None:
                return False
            self._audit(
                conn,
                request_id,
                "intake",
                Action.REJECTED,
                reason_code=reason_code,
                raw_sha256=digest,
                **detail,
            )
        return True

    def rejected_errors(self, raw_sha256: str) -> list[dict[str, Any]]:
        """The failing fields and why, of the latest rejection of the event with this
        digest (none if it was never rejected)."""
        with self.session() as s:
            row = s.scalars(
                select(Rejected)
                .where(Rejected.raw_sha256 == raw_sha256)
                .order_by(Rejected.id.desc())
                .limit(1)
            ).first()
            return list(row.errors) if row is not None else []

    def admit(
        self,
        event: RequestEvent,
        action: str,
        reason: str | None,
        deadline: datetime,
        clock_pauses: bool = False,
        key_id: str | None = None,
        may_release: bool = True,
    ) -> Admission:
        """Record a valid event. ``action`` is the rules' decision: proceed, hold or refuse.

        A re-send under a known ``request_id`` is compared with the request as recorded
        (``services.ledger.resends``): identical, it is a duplicate; differing only in
        release evidence while held, it releases (or holds again); anything else is a
        ``conflict``, recorded by the caller's rejection, and changes nothing.
        With ``clock_pauses`` (the regulation stops the clock while identity is verified),
        a request leaving a verification hold has its deadline moved by the time it waited.
        ``key_id``, the producer key that signed the event, goes into the audit trail
        with the evidence the admission or release rests on. Without ``may_release`` a
        re-send that changes a held request's evidence is ``not_permitted``, and changes
        nothing, and an identical one is a duplicate (the rules do not decide again). A
        duplicate is audited and does nothing else, whatever the request's
        status: the sweeper re-sends an accepted request that fan-out never received.
        """
        return self._admit(
            [Arrival(event, action, reason, deadline, clock_pauses, key_id, may_release)]
        )[0]

    def admit_many(self, arrivals: Sequence[Arrival]) -> list[Admission]:
        """``admit`` each of ``arrivals``, in order, in one transaction: the new requests
        in one statement and their audit entries in another. A request twice among them
        is new the first time, and a re-send after."""
        return self._admit(arrivals)

    def _admit(self, arrivals: Sequence[Arrival]) -> list[Admission]:
        now = utcnow()
        ids = {a.event.request_id for a in arrivals}
        sqlite = self.engine.dialect.name == "sqlite"
        known, made = self._made_first(arrivals, ids, now) if sqlite else (set(), {})
        with self.engine.begin() as conn:
            # On PostgreSQL held until the commit: a re-send is compared with the request
            # as it stays. SQLite's lock is the database's: a batch waits for it only once
            # it writes (a request another worker inserts meanwhile is then a re-send).
            found = known if sqlite else hold_requests(conn, ids)
            first: dict[str, int] = {}
            for i, a in enumerate(arrivals):
                if a.event.request_id not in found:
                    first.setdefault(a.event.request_id, i)
            # in one order, so that two workers inserting the same requests never deadlock
            rows = [
                made.get(rid) or self._admitted_row(arrivals[i], now)
                for rid, i in sorted(first.items())
            ]
            # Inserted unless there: another worker may have admitted it since (both held
            # the partition, in a rebalance). That one is then a re-send.
            new = insert_new(conn, INSERT_NEW_REQUESTS, rows)
            audits = [
                entry
                for i in first.values()
                if arrivals[i].event.request_id in new
                for entry in _admitted_audits(arrivals[i])
            ]
            execute_many(conn, INSERT_AUDITS, audits)
            return [
                Admission(Admitted.NEW, _STATUS[a.action], a.reason)
                if a.event.request_id in new and first[a.event.request_id] == i
                else self._resent(conn, a, now)
                for i, a in enumerate(arrivals)
            ]

    def _made_first(
        self, arrivals: Sequence[Arrival], ids: set[str], now: datetime
    ) -> tuple[set[str], dict[str, dict[str, Any]]]:
        """On SQLite, which of ``ids`` the ledger has, and the rows of the others, made
        before the transaction: sealing one may make its data key (a file written and
        synced), which must not hold up other writers, as the transaction's lock (the
        database's) would. PostgreSQL locks only the rows: it makes them in the
        transaction, and saves this read's round trip."""
        with self._single.begin() as conn:
            known = set(conn.execute(SELECT_REQUEST_IDS, {"ids": list(ids)}).scalars())
        made = {
            a.event.request_id: self._admitted_row(a, now)
            for a in reversed(arrivals)  # the first event of a request makes its row
            if a.event.request_id not in known
        }
        return known, made

    def _admitted_row(self, a: Arrival, now: datetime) -> dict[str, Any]:
        """The request row ``a`` admits (``statements.ADMITTED_COLUMNS``): its event
        sealed under the request's data key, made now. Only a row to insert seals: a
        duplicate of a request whose key was shredded makes no new key."""
        event = a.event
        return {
            "request_id": event.request_id,
            "kind": event.kind,
            "regulation": event.regulation,
            "status": _STATUS[a.action],
            "hold_reason": a.reason,
            "received_at": as_utc(event.received_at),
            "deadline_at": as_utc(a.deadline),
            "event": self._kept(event.request_id, EVENT_FIELD, event.model_dump(mode="json")),
            "subject_digests": sorted(subject_digests(event.subject.identifiers)),
            "deliveries": [a.message] if a.message else None,
            "created_at": now,
            "updated_at": now,
        }

    def _resent(self, conn: Connection, a: Arrival, now: datetime) -> Admission:
        """A re-send of a request the ledger has: the ORM compares and moves the row. A
        message it has taken before, read again, changes nothing and is not audited."""
        event, key_id, reason, status = a.event, a.key_id, a.reason, _STATUS[a.action]
        signed = _signed(a)
        with in_session(conn) as s:
            row = s.get(Request, event.request_id, with_for_update=True)
            assert row is not None  # found, or inserted by another worker since
            if taken(row, a.message):
                return Admission(Admitted.REDELIVERED, row.status, row.hold_reason)
            held = row.status == RequestStatus.HELD
            changed = self._changed(row, event)
            conflicting = resends.conflicts(changed, held)
            if conflicting:  # its rejection is recorded once a message (``record_rejected``)
                return Admission(Admitted.CONFLICT, row.status, row.hold_reason, tuple(conflicting))
            if held and changed and not a.may_release:
                return Admission(Admitted.NOT_PERMITTED, row.status, row.hold_reason)
            take(row, a.message)
            if not held or not a.may_release:  # nothing to decide again
                self._audit(
                    s,
                    event.request_id,
                    "intake",
                    Action.DUPLICATE_IGNORED,
                    status=row.status,
                    **signed,
                )
                return Admission(Admitted.DUPLICATE, row.status)
            previous = row.hold_reason
            event_kept = self._kept(event.request_id, EVENT_FIELD, event.model_dump(mode="json"))
            row.event, row.status, row.hold_reason, row.updated_at = event_kept, status, reason, now
            if a.clock_pauses and previous == VERIFICATION_HOLD and reason != previous:
                # verification is always the first hold, so it began at intake
                paused = now - as_utc(row.created_at)
                row.deadline_at = as_utc(row.deadline_at) + paused
                self._audit(
                    s,
                    event.request_id,
                    "rules",
                    Action.CLOCK_RESUMED,
                    paused_ms=int(paused.total_seconds() * 1000),
                    deadline=row.deadline_at.isoformat(),
                    key_id=key_id,
                )
            if a.action == "hold":
                self._audit(
                    s,
                    event.request_id,
                    "rules",
                    Action.HOLD if reason != previous else Action.STILL_HELD,
                    reason_code=reason,
                    **signed,
                )
                return Admission(Admitted.STILL_HELD, status, reason)
            self._audit(
                s,
                event.request_id,
                "rules",
                Action.RELEASED if a.action == "proceed" else Action.REFUSE,
                previous_reason=previous,
                reason_code=reason,
                **signed,
            )
            released = Admitted.RELEASED if a.action == "proceed" else Admitted.NEW
            return Admission(released, status, reason)

    def _changed(self, row: Request, event: RequestEvent) -> list[str]:
        """The fields ``event`` changes in the request ``row`` records."""
        try:
            stored = self.request_event(row)
        except (LookupError, CryptoError):  # its key is shredded, or this process has none
            return resends.changed_by_digest(
                row.kind, row.regulation, row.subject_digests or [], event
            )
        return resends.changed_fields(stored, event)


#: The request's status, by the rules' decision.
_STATUS = {
    "proceed": RequestStatus.ACCEPTED,
    "hold": RequestStatus.HELD,
    "refuse": RequestStatus.REFUSED,
}


def _signed(a: Arrival) -> dict[str, Any]:
    """What an admission or release rests on, for its audit entries."""
    return {"key_id": a.key_id, "evidence": resends.evidence(a.event)}


def _admitted_audits(a: Arrival) -> list[dict[str, Any]]:
    """The audit entries of a new request: received, and the rules' hold or refusal."""
    event = a.event
    entries = [
        _audit_row(
            event.request_id,
            "intake",
            Action.RECEIVED,
            kind=event.kind,
            regulation=event.regulation,
            **({"grounds": list(event.grounds)} if event.grounds else {}),
            **_signed(a),
        )
    ]
    if a.action != "proceed":
        entries.append(
            _audit_row(
                event.request_id,
                "rules",
                Action(a.action),
                reason_code=a.reason,
                key_id=a.key_id,
            )
        )
    return entries
