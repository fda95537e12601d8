"""The append-only audit trail: a request's timeline, and purging past retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

from services.ledger.base import AUDIT_MIN_RETENTION_MONTHS, LedgerBase, _rowcount, as_utc
from services.ledger.models import AuditEntry
from services.ledger.statements import notified
from services.ledger.types import Action
from services.rules.policy import add_months
from streams.records import utcnow


class Audit(LedgerBase):
    """Reading and purging the audit trail."""

    def notified(self, request_id: str, notice_id: str) -> bool:
        """Whether the notice ``notice_id`` was recorded as sent."""
        return (request_id, notice_id) in self.sent_notices([request_id])

    def sent_notices(self, request_ids: Sequence[str]) -> set[tuple[str, str]]:
        """The notices recorded as sent to the principals of ``request_ids``, as
        (request id, notice id): one read for them all."""
        with self._single.begin() as conn:
            return notified(conn, request_ids)

    def audited_at(self, request_id: str, action: Action) -> list[datetime]:
        """When each ``action`` on the request was audited, oldest first."""
        with self.session() as s:
            return [
                as_utc(at)
                for at in s.scalars(
                    select(AuditEntry.at)
                    .where(AuditEntry.request_id == request_id, AuditEntry.action == action)
                    .order_by(AuditEntry.id)
                )
            ]

    def timeline(self, request_id: str) -> list[AuditEntry]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.request_id == request_id)
                    .order_by(AuditEntry.id)
                )
            )

    def purge_audit(self, before: datetime, by: str, now: datetime | None = None) -> int:
        """Delete audit entries older than ``before``, never younger than
        ``AUDIT_MIN_RETENTION_MONTHS``; the purge itself is audited."""
        floor = add_months(now or utcnow(), -AUDIT_MIN_RETENTION_MONTHS)
        if as_utc(before) > floor:
            raise ValueError(
                f"audit entries are kept at least {AUDIT_MIN_RETENTION_MONTHS} months: "
                f"purge before {floor.date().isoformat()} or earlier"
            )
        with self.session() as s:
            count = _rowcount(s, delete(AuditEntry).where(AuditEntry.at < as_utc(before)))
            self._audit(s, None, by, Action.AUDIT_PURGED, before=before.isoformat(), count=count)
        return count
