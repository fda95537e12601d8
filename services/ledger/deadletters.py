"""Dead letters, kept sealed, and their redrive: a task opened again, exactly once."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.crypto import KeyDestroyed
from services.ledger.base import DEAD_LETTER_FIELD, LedgerBase, _reopen, _rowcount
from services.ledger.models import DeadLetter, Request, RequestStatus, Task
from services.ledger.statements import INSERT_NEW_DEAD_LETTER, insert_new
from services.ledger.types import Action
from streams.records import TaskStatus, utcnow

#: The statuses a task is redriven from, and what it becomes.
_REDRIVABLE = (TaskStatus.FAILED, TaskStatus.TIMED_OUT)
_PENDING_AGAIN = {"status": TaskStatus.PENDING, "result": None, "error": None, "finished_at": None}


class _NotRedriven(Exception):
    """Why a task is not redriven; raised so that nothing of the redrive is kept."""


class DeadLetters(LedgerBase):
    """Dead letters and their redrive."""

    def record_dead_letter(self, row: DeadLetter, kept: dict[str, Any] | None) -> bool:
        """Keep a dead letter, once: a redelivered copy (same ``row.id``) changes nothing.

        ``kept`` (the original event, its headers, the error's detail: what may name
        someone) is sealed under the request's data key; without a sealer or a request
        to key it by (or with nothing ``kept``), it is not kept at all. Nor is it once
        an admitted request's key is shredded: a letter never makes that key again.
        True if the letter was new."""
        with self.session() as s:
            if s.get(DeadLetter, row.id) is not None:
                return False
            admitted = row.request_id is not None and s.get(Request, row.request_id) is not None
        row.sealed = None
        if self.sealer is not None and row.request_id is not None and kept is not None:
            # not a valid request id, or a shredded key: nothing to seal it under
            with suppress(ValueError, KeyDestroyed):
                row.sealed = self.sealer.seal_field(
                    row.request_id, DEAD_LETTER_FIELD, kept, create=not admitted
                )
        with self.engine.begin() as conn:
            # skipped if another worker kept the same letter since (both held
            # ``dsr.deadletter`` in a rebalance)
            if not insert_new(conn, INSERT_NEW_DEAD_LETTER, _columns(row)):
                return False
            self._audit(
                conn,
                row.request_id,
                "worker",
                Action.DEAD_LETTERED,
                letter=row.id,
                source=row.source,
                reason_code=row.reason_code,
            )
        return True

    def dead_letters(
        self, topic: str | None = None, request_id: str | None = None
    ) -> list[DeadLetter]:
        """Dead letters, oldest first; only those going back to ``topic``, or of ``request_id``."""
        query = select(DeadLetter).order_by(DeadLetter.at, DeadLetter.id)
        if topic is not None:
            query = query.where(DeadLetter.topic == topic)
        if request_id is not None:
            query = query.where(DeadLetter.request_id == request_id)
        with self.session() as s:
            return list(s.scalars(query))

    def dead_letter_kept(self, row: DeadLetter) -> dict[str, Any] | None:
        """What ``record_dead_letter`` sealed of ``row``, opened; None if nothing was kept.

        Raises ``KeyDestroyed`` once the request's key is shredded."""
        if row.sealed is None or row.request_id is None:
            return None
        return cast(dict[str, Any], self._opened(row.request_id, DEAD_LETTER_FIELD, row.sealed))

    @staticmethod
    def _claim_letter(s: Session, letter: str, now: datetime) -> str | None:
        """Mark dead letter ``letter`` redriven, atomically; why not, if it cannot be."""
        claimed = _rowcount(
            s,
            update(DeadLetter)
            .where(DeadLetter.id == letter, DeadLetter.redriven_at.is_(None))
            .values(redriven_at=now),
        )
        if claimed:
            return None
        return "already redriven" if s.get(DeadLetter, letter) else "the ledger has no such letter"

    def claim_redrive(self, letter: str, request_id: str | None, source: str) -> str | None:
        """Mark dead letter ``letter`` redriven and audit it; why not, if it already was."""
        with self.session() as s:
            why_not = self._claim_letter(s, letter, utcnow())
            if why_not is None:
                self._audit(
                    s, request_id, "operator", Action.REDRIVEN, letter=letter, source=source
                )
            return why_not

    def reopen_task(self, task_id: str, letter: str, timeout: timedelta) -> str | None:
        """Make a failed task pending again for a redrive of dead letter ``letter`` (marked
        redriven), and reopen its request if that had completed; None when done, else why
        not, and then nothing has changed.

        The request's next completion sends the next response revision."""
        try:
            with self.session() as s:
                self._reopen_task(s, task_id, letter, utcnow(), timeout)
        except _NotRedriven as why:
            return str(why)
        return None

    def _reopen_task(
        self, s: Session, task_id: str, letter: str, now: datetime, timeout: timedelta
    ) -> None:
        task = s.get(Task, task_id)
        if task is None:
            raise _NotRedriven("the ledger has no such task")
        was = task.status
        # Only a task still failed: an ``ok`` that another worker recorded since it was
        # read (a late result) is kept.
        reopened = update(Task).where(Task.task_id == task_id, Task.status.in_(_REDRIVABLE))
        if not _rowcount(s, reopened.values(_PENDING_AGAIN)):
            s.refresh(task)
            row = s.get(DeadLetter, letter)
            if row is not None and row.redriven_at is not None:
                raise _NotRedriven("already redriven")
            raise _NotRedriven(f"the task is {task.status}, not failed")
        if why_not := self._claim_letter(s, letter, now):
            raise _NotRedriven(why_not)  # the task's move is rolled back
        request = s.get(Request, task.request_id)
        assert request is not None  # a task's request is never deleted
        detail: dict[str, Any] = {
            "letter": letter,
            "task_id": task_id,
            "system": task.system,
            "was": was,
        }
        if request.status != RequestStatus.FANNED_OUT:
            detail["superseded"] = _reopen(s, request)
        request.timeout_at = now + timeout
        request.updated_at = now
        self._audit(s, request.request_id, "operator", Action.REDRIVEN, **detail)


def _columns(row: DeadLetter) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in DeadLetter.__table__.columns}
