"""Operators' decisions on requests: parking and releasing, extending, refusing in whole
or in part."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from services.ledger.base import LedgerBase, as_utc, take, taken
from services.ledger.models import FINAL_STATUSES, AuditEntry, Request, RequestStatus
from services.ledger.types import Action, Decided, Unparked
from streams.records import PACKAGE_KINDS, Kind, RefusedPart, utcnow


class Decisions(LedgerBase):
    """Parking, extensions and refusals."""

    def park(self, request_id: str, stage: str, error: str, where: str) -> bool:
        """Set an unanswered request aside after handling it raised ``error`` (an exception
        type) at ``where`` (a code location): nothing moves it until ``release_parked``.
        Its status and hold reason before are kept in the ``parked`` audit row. False if
        there is no such request, it is answered, or it is parked already."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id, with_for_update=True)
            if row is None or row.completed_at is not None or row.status == RequestStatus.PARKED:
                return False
            was, was_reason = row.status, row.hold_reason
            row.status, row.hold_reason, row.updated_at = RequestStatus.PARKED, error[:64], now
            self._audit(
                s,
                request_id,
                "worker",
                Action.PARKED,
                stage=stage,
                error_code=error[:64],
                where=where[:200],
                was=was,
                was_reason=was_reason,
            )
            return True

    def release_parked(
        self, request_id: str, by: str, timeout: timedelta | None = None
    ) -> tuple[Unparked, str | None]:
        """Put a parked request back as it was when parked; the outcome and the status it
        is back in. A fanned-out
        request gets ``timeout`` again for the systems it still waits on."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id, with_for_update=True)
            if row is None:
                return Unparked.UNKNOWN_REQUEST, None
            if row.status != RequestStatus.PARKED:
                return Unparked.NOT_PARKED, row.status
            parked = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.request_id == request_id, AuditEntry.action == Action.PARKED)
                .order_by(AuditEntry.id.desc())
                .limit(1)
            ).one()
            row.status = parked.detail["was"]
            row.hold_reason = parked.detail.get("was_reason")
            row.updated_at = now
            if timeout is not None and row.status == RequestStatus.FANNED_OUT:
                row.timeout_at = now + timeout
            self._audit(s, request_id, f"operator:{by}", Action.UNPARKED, status=row.status)
            return Unparked.RELEASED, row.status

    def extend(
        self,
        request_id: str,
        reason: str,
        decided_by: str,
        extension: Callable[[datetime], datetime] | None,
        key_id: str | None = None,
        message: str | None = None,
    ) -> tuple[Decided, datetime | None]:
        """Move an open request's deadline by ``extension``, once; return the outcome
        (``extended`` or why not) and the deadline. ``key_id`` (the decision's signing
        key) goes into the audit row. The decision's ``message`` (its digest and where it
        was read), applied before and read again, is ``redelivered``, and changes nothing
        (as for each decision)."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id)
            if row is None:
                return Decided.UNKNOWN_REQUEST, None
            deadline = as_utc(row.deadline_at)
            if taken(row, message):
                return Decided.REDELIVERED, deadline
            if row.status in FINAL_STATUSES:
                return Decided.REQUEST_CLOSED, deadline
            if extension is None:
                return Decided.EXTENSION_NOT_AVAILABLE, deadline
            if row.extensions:
                return Decided.ALREADY_EXTENDED, deadline
            new = extension(deadline)
            entry = {
                "reason": reason,
                "previous_deadline": deadline.isoformat(),
                "deadline": new.isoformat(),
                "at": now.isoformat(),
            }
            row.extensions = [entry]
            row.deadline_at = new
            row.updated_at = now
            take(row, message)
            self._audit(
                s, request_id, f"operator:{decided_by}", Action.EXTENDED, key_id=key_id, **entry
            )
            return Decided.EXTENDED, new

    def refuse(
        self,
        request_id: str,
        ground: str,
        reason: str,
        decided_by: str,
        key_id: str | None = None,
        message: str | None = None,
    ) -> Decided:
        """Refuse a request not yet fanned out on ``ground``; the outcome (``refused``,
        or why not). Its response is then built as for a refusal at intake."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id)
            if row is None:
                return Decided.UNKNOWN_REQUEST
            if taken(row, message):
                return Decided.REDELIVERED
            if row.status in FINAL_STATUSES:
                return Decided.REQUEST_CLOSED
            if row.status == RequestStatus.FANNED_OUT:
                return Decided.ALREADY_FANNED_OUT
            previous = row.status
            row.status, row.hold_reason, row.updated_at = RequestStatus.REFUSED, ground, now
            take(row, message)
            self._audit(
                s,
                request_id,
                f"operator:{decided_by}",
                Action.REFUSED,
                ground=ground,
                reason=reason,
                was=previous,
                key_id=key_id,
            )
            return Decided.REFUSED

    def refuse_part(
        self,
        request_id: str,
        part: RefusedPart,
        key_id: str | None = None,
        message: str | None = None,
    ) -> Decided:
        """Refuse ``part`` of a request; the outcome (``refused_in_part``, or why not).

        A disclosure's part may be refused until its response is built (what was found
        is then withheld); another kind's only before fan-out (the system is never
        asked), since its effect cannot be undone."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id)
            if row is None:
                return Decided.UNKNOWN_REQUEST
            if taken(row, message):
                return Decided.REDELIVERED
            if row.status in FINAL_STATUSES or row.completed_at is not None:
                return Decided.REQUEST_CLOSED
            if part.fields and Kind(row.kind) not in PACKAGE_KINDS:
                return Decided.FIELDS_NOT_REFUSABLE
            if row.status == RequestStatus.FANNED_OUT and Kind(row.kind) not in PACKAGE_KINDS:
                return Decided.ALREADY_FANNED_OUT
            row.refused_parts = [*(row.refused_parts or []), part.model_dump(mode="json")]
            row.updated_at = now
            take(row, message)
            self._audit(
                s,
                request_id,
                f"operator:{part.decided_by}",
                Action.REFUSED_IN_PART,
                ground=part.ground,
                reason=part.reason,
                system=part.system,
                fields=part.fields,
                key_id=key_id,
            )
            return Decided.REFUSED_IN_PART

    @staticmethod
    def refused_parts(row: Request) -> list[RefusedPart]:
        return [RefusedPart.model_validate(p) for p in row.refused_parts or []]
