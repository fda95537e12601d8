"""The responses' outbox (leases, published marks), and the sweeps that repair what a
crash left."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, select, update

from services.ledger.base import SEND_LEASE, LedgerBase, _rowcount, as_utc
from services.ledger.models import OPEN_STATUSES, Request, RequestStatus, Response
from services.ledger.statements import (
    MARK_PUBLISHED,
    SELECT_REQUESTS,
    notified,
    requests_by_id,
    responses_by_id,
)
from services.ledger.types import Action
from streams.records import utcnow


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """No one holds the response's lease: it ran out, or was never taken."""
    return Response.lease_until.is_(None) | (Response.lease_until < now)


class NoticeReads(NamedTuple):
    """What a batch of notices is built from, as it was at one moment."""

    requests: dict[str, Request]
    responses: dict[str, Response]
    #: The notices recorded as sent, as (request id, notice id).
    sent: set[tuple[str, str]]


class Outbox(LedgerBase):
    """The responses' outbox and the sweeps."""

    def notice_reads(self, request_ids: Sequence[str], answered: Sequence[str]) -> NoticeReads:
        """The requests of ``request_ids``, the responses of those ``answered``, and the
        notices recorded as sent to their principals: one read of one moment."""
        with self._snapshot() as conn:
            rows = requests_by_id(conn, SELECT_REQUESTS, request_ids)
            responses = responses_by_id(conn, answered) if answered else {}
            return NoticeReads(rows, responses, notified(conn, rows) if rows else set())

    def unpublished_responses(self, limit: int = 100, *, unleased: bool = False) -> list[Response]:
        """Responses not yet sent, oldest first; with ``unleased``, only those no live
        sender holds (its lease has run out): a crash left them unsent, or unmarked."""
        query = select(Response).where(Response.published_at.is_(None))
        if unleased:
            query = query.where(_lease_free(utcnow()))
        with self.session() as s:
            return list(s.scalars(query.order_by(Response.created_at).limit(limit)))

    def claim_responses(self, request_ids: Sequence[str]) -> list[str]:
        """Take the lease of each of these unpublished responses whose lease has run out;
        the ids taken. Whoever takes one is the only one to send it until the lease ends
        (``renew_leases`` keeps it while a send is unanswered)."""
        now = utcnow()
        taken = []
        with self.session() as s:
            for request_id in request_ids:
                statement = (
                    update(Response)
                    .where(
                        Response.request_id == request_id,
                        Response.published_at.is_(None),
                        _lease_free(now),
                    )
                    .values(lease_until=now + SEND_LEASE)
                )
                if _rowcount(s, statement):
                    taken.append(request_id)
        return taken

    def renew_leases(self, request_ids: Sequence[str]) -> int:
        """Extend the leases of these responses, still being sent; how many."""
        with self.session() as s:
            return _rowcount(
                s,
                update(Response)
                .where(Response.request_id.in_(list(request_ids)), Response.published_at.is_(None))
                .values(lease_until=utcnow() + SEND_LEASE),
            )

    def unpublish(self, since: datetime, completed_after: datetime) -> int:
        """Mark the responses published at or after ``since``, of requests completed after
        ``completed_after``, as not sent: a broker that lost its log no longer holds them,
        and the sweeper sends them again. How many."""
        with self.session() as s:
            return _rowcount(
                s,
                update(Response)
                .where(Response.published_at >= since, Response.created_at > completed_after)
                .values(published_at=None, lease_until=None),
            )

    def mark_published(self, request_ids: Sequence[str]) -> None:
        with self._single.begin() as conn:
            conn.execute(MARK_PUBLISHED, {"ids": list(request_ids), "published_at": utcnow()})

    def response(self, request_id: str) -> Response | None:
        return self.responses([request_id]).get(request_id)

    def responses(self, request_ids: Sequence[str]) -> dict[str, Response]:
        """The responses the ledger holds for any of ``request_ids``, by request id: one
        read for them all."""
        with self._single.begin() as conn:
            return responses_by_id(conn, request_ids)

    def completion_times(self, request_ids: Sequence[str]) -> dict[str, datetime | None]:
        """When each of these requests completed (None while open); ids not in the
        ledger are left out."""
        found: dict[str, datetime | None] = {}
        ids = list(request_ids)
        with self.session() as s:
            for i in range(0, len(ids), 500):
                rows = s.execute(
                    select(Request.request_id, Request.completed_at).where(
                        Request.request_id.in_(ids[i : i + 500])
                    )
                )
                found.update({rid: as_utc(done) if done else None for rid, done in rows})
        return found

    def open_fan_outs(self) -> list[str]:
        """Requests accepted or fanned out and not yet complete, oldest first."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Request.request_id)
                    .where(Request.status.in_([RequestStatus.ACCEPTED, RequestStatus.FANNED_OUT]))
                    .order_by(Request.received_at)
                )
            )

    def open_changed_since(self, since: datetime) -> list[Request]:
        """Open requests admitted or changed (held, extended, ...) at or after ``since``,
        oldest first."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Request)
                    .where(Request.status.in_(OPEN_STATUSES), Request.updated_at >= since)
                    .order_by(Request.received_at)
                )
            )

    def record_reconciled(self, count: int) -> None:
        with self.session() as s:
            self._audit(s, None, "operator", Action.RECONCILED, requests=count)

    def overdue_fan_outs(self, now: datetime | None = None) -> dict[str, datetime]:
        """Fanned-out requests past their timeout at ``now``, with their timeouts."""
        now = now or utcnow()
        with self.session() as s:
            rows = s.execute(
                select(Request.request_id, Request.timeout_at).where(
                    Request.status == RequestStatus.FANNED_OUT, Request.timeout_at < now
                )
            )
            return {request_id: as_utc(at) for request_id, at in rows if at is not None}

    def claim_stalled_accepted(self, older_than: timedelta, limit: int = 500) -> list[str]:
        """Requests accepted over ``older_than`` ago and not fanned out since; each is
        claimed (its clock restarts), so it is re-sent at most once per ``older_than``."""
        now = utcnow()
        with self.session() as s:
            ids = list(
                s.scalars(
                    select(Request.request_id)
                    .where(
                        Request.status == RequestStatus.ACCEPTED,
                        Request.updated_at < now - older_than,
                    )
                    .limit(limit)
                )
            )
            if ids:
                _rowcount(
                    s,
                    update(Request)
                    .where(Request.request_id.in_(ids), Request.status == RequestStatus.ACCEPTED)
                    .values(updated_at=now),
                )
            return ids

    def stalled_refusals(self) -> list[str]:
        """Requests refused at intake whose response was never built."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Request.request_id).where(
                        Request.status == RequestStatus.REFUSED, Request.completed_at.is_(None)
                    )
                )
            )
