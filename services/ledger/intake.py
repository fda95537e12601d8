"""Intake: rejected events, and request events admitted: new, duplicates, releases of
held requests, holds and conflicting re-sends."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.crypto.digests import subject_digests
from services.crypto.errors import CryptoError
from services.ledger import resends
from services.ledger.base import EVENT_FIELD, VERIFICATION_HOLD, LedgerBase, as_utc, in_session
from services.ledger.models import Rejected, Request, RequestStatus
from services.ledger.statements import INSERT_NEW_REQUEST, LOCK_REQUEST, insert_new
from services.ledger.types import Action, Admission, Admitted
from streams.records import RequestEvent, utcnow


class Intake(LedgerBase):
    """Rejected events, and admitting request events."""

    def record_rejected(
        self,
        reason_code: str,
        errors: list[dict[str, Any]],
        raw: bytes,
        request_id: str | None,
        **detail: Any,
    ) -> None:
        """Keep a trace of a malformed event: its reason and a hash, never its content;
        ``detail`` (e.g. the signing key) goes into its audit row."""
        digest = hashlib.sha256(raw).hexdigest()
        with self.session() as s:
            s.add(
                Rejected(
                    at=utcnow(),
                    reason_code=reason_code,
                    request_id=request_id,
                    errors=errors,
                    raw_sha256=digest,
                )
            )
            self._audit(
                s,
                request_id,
                "intake",
                Action.REJECTED,
                reason_code=reason_code,
                raw_sha256=digest,
                **detail,
            )

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
        now = utcnow()
        status = {
            "proceed": RequestStatus.ACCEPTED,
            "hold": RequestStatus.HELD,
            "refuse": RequestStatus.REFUSED,
        }[action]
        signed = {"key_id": key_id, "evidence": resends.evidence(event)}

        def body() -> Any:
            """The event as kept: sealed under the request's data key, made if missing.
            Only what is kept seals it: a duplicate of a request whose key was shredded
            makes no new key."""
            return self._kept(event.request_id, EVENT_FIELD, event.model_dump(mode="json"))

        with self.engine.begin() as conn:
            # Inserted unless it is there: found here, or admitted by another worker since
            # (both held the partition, in a rebalance). That one is then a re-send.
            if conn.execute(LOCK_REQUEST, {"id": event.request_id}).first() is None and insert_new(
                conn,
                INSERT_NEW_REQUEST,
                {
                    "request_id": event.request_id,
                    "kind": event.kind,
                    "regulation": event.regulation,
                    "status": status,
                    "hold_reason": reason,
                    "received_at": as_utc(event.received_at),
                    "deadline_at": as_utc(deadline),
                    "event": body(),
                    "subject_digests": sorted(subject_digests(event.subject.identifiers)),
                    "created_at": now,
                    "updated_at": now,
                },
            ):
                self._audit(
                    conn,
                    event.request_id,
                    "intake",
                    Action.RECEIVED,
                    kind=event.kind,
                    regulation=event.regulation,
                    **({"grounds": list(event.grounds)} if event.grounds else {}),
                    **signed,
                )
                if action != "proceed":
                    self._audit(
                        conn,
                        event.request_id,
                        "rules",
                        Action(action),
                        reason_code=reason,
                        key_id=key_id,
                    )
                return Admission(Admitted.NEW, status, reason)
            with in_session(conn) as s:  # a re-send: the ORM compares and moves the row
                row = s.get(Request, event.request_id, with_for_update=True)
                assert row is not None  # found above, or inserted by another worker since
                held = row.status == RequestStatus.HELD
                changed = self._changed(row, event)
                conflicting = resends.conflicts(changed, held)
                if conflicting:
                    return Admission(
                        Admitted.CONFLICT, row.status, row.hold_reason, tuple(conflicting)
                    )
                if held and changed and not may_release:
                    return Admission(Admitted.NOT_PERMITTED, row.status, row.hold_reason)
                if not held or not may_release:  # nothing to decide again
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
                row.event, row.status, row.hold_reason, row.updated_at = body(), status, reason, now
                if clock_pauses and previous == VERIFICATION_HOLD and reason != previous:
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
                if action == "hold":
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
                    Action.RELEASED if action == "proceed" else Action.REFUSE,
                    previous_reason=previous,
                    reason_code=reason,
                    **signed,
                )
                released = Admitted.RELEASED if action == "proceed" else Admitted.NEW
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
