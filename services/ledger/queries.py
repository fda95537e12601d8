"""Read models for monitoring and the dashboard: counts and bounded rows, no
identifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import case, func, or_, select

from services.ledger.base import LedgerBase, as_utc
from services.ledger.models import OPEN_STATUSES, AuditEntry, Request, Task
from services.ledger.types import Action
from streams.records import TaskStatus


@dataclass(frozen=True)
class FinishedRequest:
    kind: str
    regulation: str
    status: str
    created_at: datetime
    completed_at: datetime


@dataclass(frozen=True)
class FinishedTask:
    system: str
    status: str
    created_at: datetime
    finished_at: datetime
    #: When the connector runner began the task (None if no runner ever answered).
    started_at: datetime | None


def _parse(value: str | None) -> datetime | None:
    try:
        return as_utc(datetime.fromisoformat(value)) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class OpenRequest:
    request_id: str
    kind: str
    regulation: str
    status: str
    hold_reason: str | None
    created_at: datetime
    deadline_at: datetime
    waiting_on: list[str]


class Queries(LedgerBase):
    """Monitoring's and the dashboard's reads."""

    def open_request_counts(self) -> dict[tuple[str, str | None], int]:
        """Open requests by ``(status, hold_reason)``."""
        open_ = [st.value for st in OPEN_STATUSES]
        with self.session() as s:
            rows = s.execute(
                select(Request.status, Request.hold_reason, func.count())
                .where(Request.status.in_(open_))
                .group_by(Request.status, Request.hold_reason)
            )
            return {(status, reason): int(n) for status, reason, n in rows}

    def pending_task_counts(self) -> dict[str, int]:
        """Tasks waiting for a connector runner, by system (open requests only)."""
        open_ = [st.value for st in OPEN_STATUSES]
        with self.session() as s:
            rows = s.execute(
                select(Task.system, func.count())
                .join(Request, Request.request_id == Task.request_id)
                .where(Request.status.in_(open_), Task.status == TaskStatus.PENDING)
                .group_by(Task.system)
            )
            return {system: int(n) for system, n in rows}

    def oldest_pending_tasks(self) -> dict[str, datetime]:
        """When the oldest task still waiting for a connector result was created, by system
        (open requests only)."""
        open_ = [st.value for st in OPEN_STATUSES]
        with self.session() as s:
            rows = s.execute(
                select(Task.system, func.min(Task.created_at))
                .join(Request, Request.request_id == Task.request_id)
                .where(Request.status.in_(open_), Task.status == TaskStatus.PENDING)
                .group_by(Task.system)
            )
            return {system: as_utc(at) for system, at in rows if at is not None}

    def redrives(self, since: datetime | None = None) -> dict[str, int]:
        """Tasks redriven after they failed (``dsr dlq redrive``), by system, since
        ``since`` (ever, when None): a failure a redrive fixed stays in the history."""
        system = AuditEntry.detail["system"].as_string()
        query = select(system, func.count()).where(
            AuditEntry.action == Action.REDRIVEN,
            AuditEntry.actor == "operator",
            system.is_not(None),
        )
        if since is not None:
            query = query.where(AuditEntry.at >= as_utc(since))
        with self.session() as s:
            return {name: int(n) for name, n in s.execute(query.group_by(system))}

    def open_deadline_counts(self, before: Sequence[datetime]) -> dict[str, list[int]]:
        """For each regulation, how many open requests are due before each of ``before``."""
        open_ = [st.value for st in OPEN_STATUSES]
        columns = [
            func.sum(case((Request.deadline_at < as_utc(bound), 1), else_=0)) for bound in before
        ]
        with self.session() as s:
            rows = s.execute(
                select(Request.regulation, *columns)
                .where(Request.status.in_(open_))
                .group_by(Request.regulation)
            )
            return {row[0]: [int(n or 0) for n in row[1:]] for row in rows}

    def open_received_before(self, regulation: str, bound: datetime) -> int:
        """How many open requests under ``regulation`` arrived before ``bound``."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(Request)
                    .where(
                        Request.status.in_([st.value for st in OPEN_STATUSES]),
                        Request.regulation == regulation,
                        Request.received_at < as_utc(bound),
                    )
                )
                or 0
            )

    def untold(
        self, regulations: Sequence[str], answered_since: datetime
    ) -> list[tuple[str, datetime]]:
        """The regulation and arrival of each request under ``regulations`` whose
        principal has been sent neither an acknowledgement nor the response: the open
        ones, and those answered since ``answered_since``."""
        told = select(AuditEntry.id).where(
            AuditEntry.request_id == Request.request_id,
            AuditEntry.action == Action.NOTIFIED.value,
            AuditEntry.detail["purpose"].as_string().in_(["acknowledgement", "response"]),
        )
        with self.session() as s:
            rows = s.execute(
                select(Request.regulation, Request.received_at).where(
                    Request.regulation.in_(list(regulations)),
                    or_(
                        Request.status.in_([st.value for st in OPEN_STATUSES]),
                        Request.completed_at >= as_utc(answered_since),
                    ),
                    ~told.exists(),
                )
            )
            return [(regulation, as_utc(at)) for regulation, at in rows]

    def finished_requests(self, since: datetime, limit: int = 20_000) -> list[FinishedRequest]:
        """Requests completed since ``since``, newest first (at most ``limit``)."""
        with self.session() as s:
            rows = s.execute(
                select(
                    Request.kind,
                    Request.regulation,
                    Request.status,
                    Request.created_at,
                    Request.completed_at,
                )
                .where(Request.completed_at >= as_utc(since))
                .order_by(Request.completed_at.desc())
                .limit(limit)
            )
            return [
                FinishedRequest(k, reg, st, as_utc(made), as_utc(cast(datetime, done)))
                for k, reg, st, made, done in rows
            ]

    def finished_tasks(self, since: datetime, limit: int = 50_000) -> list[FinishedTask]:
        """Tasks a system answered (or never answered) since ``since``, newest first."""
        answered = [TaskStatus.OK, TaskStatus.FAILED, TaskStatus.TIMED_OUT]
        with self.session() as s:
            rows = s.execute(
                select(
                    Task.system,
                    Task.status,
                    Task.created_at,
                    Task.finished_at,
                    Task.result["started_at"].as_string(),
                )
                .where(Task.finished_at >= as_utc(since), Task.status.in_(answered))
                .order_by(Task.finished_at.desc())
                .limit(limit)
            )
            return [
                FinishedTask(
                    system, status, as_utc(made), as_utc(cast(datetime, done)), _parse(started)
                )
                for system, status, made, done, started in rows
            ]

    def open_requests(
        self, limit: int = 200, statuses: Sequence[str] = OPEN_STATUSES
    ) -> list[OpenRequest]:
        """Open requests (or only those in ``statuses``), soonest deadline first, each
        with the systems it waits on."""
        open_ = [str(st) for st in statuses]
        with self.session() as s:
            rows = list(
                s.execute(
                    select(
                        Request.request_id,
                        Request.kind,
                        Request.regulation,
                        Request.status,
                        Request.hold_reason,
                        Request.created_at,
                        Request.deadline_at,
                    )
                    .where(Request.status.in_(open_))
                    .order_by(Request.deadline_at, Request.created_at)
                    .limit(limit)
                )
            )
            waiting: dict[str, list[str]] = {}
            for request_id, system in s.execute(
                select(Task.request_id, Task.system)
                .where(
                    Task.request_id.in_([r[0] for r in rows]),
                    Task.status == TaskStatus.PENDING,
                )
                .order_by(Task.system)
            ):
                waiting.setdefault(request_id, []).append(system)
            return [
                OpenRequest(
                    request_id,
                    kind,
                    regulation,
                    status,
                    reason,
                    as_utc(created),
                    as_utc(deadline),
                    waiting.get(request_id, []),
                )
                for request_id, kind, regulation, status, reason, created, deadline in rows
            ]
