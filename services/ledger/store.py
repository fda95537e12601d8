"""The ledger's operations. Each is one short transaction, and each is idempotent.

Redelivered events are normal with Kafka (at-least-once), so every write here
either inserts what is missing or moves a row forward from an expected state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    CursorResult,
    Engine,
    Executable,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from services.crypto.digests import subject_digests
from services.crypto.errors import CryptoError
from services.crypto.sealing import Sealer, is_sealed_field
from services.ledger import resends
from services.ledger.models import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    AuditEntry,
    DeadLetter,
    Rejected,
    Request,
    RequestStatus,
    Response,
    Task,
)
from services.rules.policy import add_months
from streams.records import (
    PACKAGE_KINDS,
    Kind,
    RefusedPart,
    RequestEvent,
    TaskResult,
    TaskStatus,
    merge_units,
    utcnow,
)
from streams.records import Task as TaskMessage

if TYPE_CHECKING:
    from services.provisions.store import ProvisionStore

MIGRATIONS = Path(__file__).parent / "migrations"
#: The audit trail is kept at least 24 months; no purge reaches younger entries.
AUDIT_MIN_RETENTION_MONTHS = 24
#: Names the ledger's sealed columns are sealed under (authenticated with the blob).
EVENT_FIELD = "requests.event"
DISCOVERED_FIELD = "requests.discovered"
DEAD_LETTER_FIELD = "dead_letters.sealed"
#: The hold reason while identity verification is pending (``services.rules``).
VERIFICATION_HOLD = "verification_pending"
#: How long a response's sender holds it (``Ledger.claim_responses``); a live sender
#: renews the lease for as long as its send is unanswered, however long a broker takes.
SEND_LEASE = timedelta(seconds=30)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def as_utc(value: datetime) -> datetime:
    """Datetimes are stored as UTC; SQLite hands them back naive."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _lease_free(now: datetime) -> Any:
    """No one holds the response's lease: it ran out, or was never taken."""
    return Response.lease_until.is_(None) | (Response.lease_until < now)


def _rowcount(s: Session, statement: Executable) -> int:
    """How many rows an UPDATE moved: the guard that makes each transition happen once.

    Sessions are short and read after they write, so nothing loaded needs syncing.
    """
    options = {"synchronize_session": False}
    result = cast(CursorResult[Any], s.execute(statement, execution_options=options))
    return int(result.rowcount)


# The hot path's writes, built once: Core statements skip the ORM's per-call work.
_TASK_TABLE = cast(Table, Task.__table__)
_TASKS = _TASK_TABLE.c
_INSERT_AUDIT = insert(cast(Table, AuditEntry.__table__))
#: What recording a task's result sets (``_result_row``'s parameters).
_RESULT_VALUES: dict[Any, Any] = {
    _TASKS.status: bindparam("status"),
    _TASKS.attempts: bindparam("attempts"),
    _TASKS.error: bindparam("error"),
    _TASKS.result: bindparam("result"),
    _TASKS.finished_at: bindparam("finished_at"),
}
_RECORD_RESULT = (
    update(_TASK_TABLE)
    .where(_TASKS.task_id == bindparam("id"), _TASKS.status == TaskStatus.PENDING.value)
    .values(_RESULT_VALUES)
)

#: A late ``ok`` result supersedes a failure or a time-out: the effect is in place, whatever
#: the task's earlier attempts reported (a runner restarted with the broker, a system that
#: answered after the request's timeout).
_SUPERSEDE_RESULT = (
    update(_TASK_TABLE)
    .where(
        _TASKS.task_id == bindparam("id"),
        _TASKS.status.in_([TaskStatus.FAILED.value, TaskStatus.TIMED_OUT.value]),
    )
    .values(_RESULT_VALUES)
)


def _audit_row(request_id: str | None, actor: str, action: str, **detail: Any) -> dict[str, Any]:
    return {
        "at": utcnow(),
        "request_id": request_id,
        "actor": actor,
        "action": action,
        "detail": detail,
    }


def _result_row(result: TaskResult) -> dict[str, Any]:
    """``_RECORD_RESULT``'s parameters for ``result``."""
    return {
        "id": result.task_id,
        "status": result.status,
        "attempts": result.attempts,
        "error": result.error,
        "result": result.model_dump(mode="json"),
        "finished_at": result.finished_at,
    }


def _result_audit(result: TaskResult) -> dict[str, Any]:
    """The audit row of a task's first result: what was done, never the data."""
    return _audit_row(
        result.request_id,
        f"connector:{result.system}",
        f"task_{result.status}",
        task_id=result.task_id,
        changed=result.changed,
        fields=result.fields,
        error_code=result.error_code,
        attempts=result.attempts,
        duration_ms=int((result.finished_at - result.started_at).total_seconds() * 1000),
    )


class Admitted(StrEnum):
    """What became of a request event at intake."""

    NEW = "new"
    RELEASED = "released"  # a held request's re-send with the evidence it waited for
    STILL_HELD = "still_held"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"  # a re-send that would change more than release evidence
    NOT_PERMITTED = "not_permitted"  # a release by a key that may not release


class Decided(StrEnum):
    """What became of an operator's decision: applied, or why not."""

    EXTENDED = "extended"
    REFUSED = "refused"
    REFUSED_IN_PART = "refused_in_part"
    UNKNOWN_REQUEST = "unknown_request"
    REQUEST_CLOSED = "request_closed"
    EXTENSION_NOT_AVAILABLE = "extension_not_available"
    ALREADY_EXTENDED = "already_extended"
    ALREADY_FANNED_OUT = "already_fanned_out"
    FIELDS_NOT_REFUSABLE = "fields_not_refusable"


@dataclass(frozen=True)
class Admission:
    """What intake should do after recording an event."""

    outcome: Admitted
    status: str
    hold_reason: str | None = None
    #: For a ``conflict``: the fields the re-send would change, by name only.
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    system: str
    kind: str
    wave: int
    status: TaskStatus
    reason: str | None = None
    #: A result known when planning (a refused system is never asked).
    result: dict[str, Any] | None = None


class Ledger:
    """The pipeline's record of requests, tasks, responses and the audit trail.

    With a ``sealer``, the personal data it keeps (the request event, the identifiers
    identity graph) is sealed under the request's data key, so it is shredded with it;
    the principal is found by ``requests.subject_digests`` only. Task results are
    kept as they arrive, sealed by the runner (``services.crypto.sealing``).
    """

    def __init__(self, url: str, sealer: Sealer | None = None) -> None:
        self.url = url
        self.sealer = sealer
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- schema -----------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    # -- audit --------------------------------------------------------------
    @staticmethod
    def _audit(s: Session, request_id: str | None, actor: str, action: str, **detail: Any) -> None:
        # a plain Core INSERT: the audit trail is append-only, nothing for the ORM to track
        s.connection().execute(_INSERT_AUDIT, _audit_row(request_id, actor, action, **detail))

    def audit(self, request_id: str | None, actor: str, action: str, **detail: Any) -> None:
        with self.session() as s:
            self._audit(s, request_id, actor, action, **detail)

    # -- intake -------------------------------------------------------------
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
                "rejected",
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
        body = self._kept(event.request_id, EVENT_FIELD, event.model_dump(mode="json"))
        signed = {"key_id": key_id, "evidence": resends.evidence(event)}
        with self.session() as s:
            row = s.get(Request, event.request_id, with_for_update=True)
            if row is None:
                s.add(
                    Request(
                        request_id=event.request_id,
                        kind=event.kind,
                        regulation=event.regulation,
                        status=status,
                        hold_reason=reason,
                        received_at=as_utc(event.received_at),
                        deadline_at=as_utc(deadline),
                        event=body,
                        subject_digests=sorted(subject_digests(event.subject.identifiers)),
                        created_at=now,
                        updated_at=now,
                    )
                )
                s.flush()
                self._audit(
                    s,
                    event.request_id,
                    "intake",
                    "received",
                    kind=event.kind,
                    regulation=event.regulation,
                    **({"grounds": list(event.grounds)} if event.grounds else {}),
                    **signed,
                )
                if action != "proceed":
                    self._audit(
                        s, event.request_id, "rules", action, reason_code=reason, key_id=key_id
                    )
                return Admission(Admitted.NEW, status, reason)
            held = row.status == RequestStatus.HELD
            changed = self._changed(row, event)
            conflicting = resends.conflicts(changed, held)
            if conflicting:
                return Admission(Admitted.CONFLICT, row.status, row.hold_reason, tuple(conflicting))
            if held and changed and not may_release:
                return Admission(Admitted.NOT_PERMITTED, row.status, row.hold_reason)
            if not held or not may_release:  # nothing to decide again
                self._audit(
                    s, event.request_id, "intake", "duplicate_ignored", status=row.status, **signed
                )
                return Admission(Admitted.DUPLICATE, row.status)
            previous = row.hold_reason
            row.event, row.status, row.hold_reason, row.updated_at = body, status, reason, now
            if clock_pauses and previous == VERIFICATION_HOLD and reason != previous:
                # verification is always the first hold, so it began at intake
                paused = now - as_utc(row.created_at)
                row.deadline_at = as_utc(row.deadline_at) + paused
                self._audit(
                    s,
                    event.request_id,
                    "rules",
                    "clock_resumed",
                    paused_ms=int(paused.total_seconds() * 1000),
                    deadline=row.deadline_at.isoformat(),
                    key_id=key_id,
                )
            if action == "hold":
                self._audit(
                    s,
                    event.request_id,
                    "rules",
                    "hold" if reason != previous else "still_held",
                    reason_code=reason,
                    **signed,
                )
                return Admission(Admitted.STILL_HELD, status, reason)
            self._audit(
                s,
                event.request_id,
                "rules",
                "released" if action == "proceed" else "refuse",
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

    # -- fan-out ------------------------------------------------------------
    def request(self, request_id: str) -> Request | None:
        with self.session() as s:
            return s.get(Request, request_id)

    def fan_out(self, request_id: str, plans: Sequence[TaskPlan], timeout: timedelta) -> list[Task]:
        """Record the first wave of a request's tasks, once each, and mark it fanned out,
        timing out ``timeout`` from now. Returns all its tasks as they now are."""
        now = utcnow()
        with self.session() as s:
            detail = self._plan(s, request_id, plans, now)[1]
            moved = _rowcount(
                s,
                update(Request)
                .where(Request.request_id == request_id, Request.status == RequestStatus.ACCEPTED)
                .values(status=RequestStatus.FANNED_OUT, timeout_at=now + timeout, updated_at=now),
            )
            if moved:
                self._audit(s, request_id, "fanout", "fanned_out", **detail)
            s.flush()
            return self._tasks(s, request_id)

    def add_wave(self, request_id: str, plans: Sequence[TaskPlan]) -> list[Task]:
        """Record the tasks a later wave adds (the systems the graph now unlocks), once
        each. Returns all the request's tasks as they now are."""
        with self.session() as s:
            new, detail = self._plan(s, request_id, plans, utcnow())
            if new:
                wave = max(p.wave for p in new)
                self._audit(s, request_id, "fanout", "wave_planned", wave=wave, **detail)
            s.flush()
            return self._tasks(s, request_id)

    def _plan(
        self, s: Session, request_id: str, plans: Sequence[TaskPlan], now: datetime
    ) -> tuple[list[TaskPlan], dict[str, Any]]:
        """Add the plans not recorded yet; the new ones, and what to audit of them."""
        existing = set(s.scalars(select(Task.task_id).where(Task.request_id == request_id)))
        new = [p for p in plans if p.task_id not in existing]
        for p in new:
            final = p.status is not TaskStatus.PENDING
            s.add(
                Task(
                    task_id=p.task_id,
                    request_id=request_id,
                    system=p.system,
                    kind=p.kind,
                    wave=p.wave,
                    status=p.status,
                    attempts=0,
                    created_at=now,
                    error=p.reason,
                    result=p.result,
                    finished_at=now if final else None,
                )
            )

        def named(status: TaskStatus) -> list[str]:
            return sorted(p.system for p in new if p.status is status)

        detail: dict[str, Any] = {
            "systems": named(TaskStatus.PENDING),
            "not_applicable": named(TaskStatus.NOT_APPLICABLE),
        }
        if refused := named(TaskStatus.REFUSED):
            detail["refused"] = refused
        return new, detail

    def merge_identities(
        self, request_id: str, found: Sequence[Mapping[str, str]]
    ) -> list[dict[str, str]]:
        """Add identity units a connector found to the request's graph; return every unit
        found so far (the request's own identifiers are not among them)."""
        with self.session() as s:
            row = s.get(Request, request_id, with_for_update=True)
            if row is None:
                return []
            known = self.identities(row)
            merged = merge_units(known, found)
            if len(merged) > len(known):
                added = merged[len(known) :]
                row.discovered = self._kept(request_id, DISCOVERED_FIELD, merged)
                digests = set().union(*(subject_digests(u) for u in added))
                row.subject_digests = sorted(set(row.subject_digests or []) | digests)
                names = sorted({name for unit in added for name in unit})
                self._audit(
                    s, request_id, "fanout", "identifiers_discovered", identifiers=names
                )  # names only, never values
            return merged

    def request_event(self, row: Request) -> RequestEvent:
        """The event ``row`` was admitted with, opened if the ledger keeps it sealed."""
        return RequestEvent.model_validate(self._opened(row.request_id, EVENT_FIELD, row.event))

    def identities(self, row: Request) -> list[dict[str, str]]:
        """The identity units connectors have found for ``row`` so far, in the order
        found. A graph kept as ``{name: [values]}`` (before units) reads as one unit per
        value."""
        found = self._opened(row.request_id, DISCOVERED_FIELD, row.discovered) or []
        if isinstance(found, dict):
            return [{name: value} for name, values in found.items() for value in values]
        return cast(list[dict[str, str]], found)

    def _kept(self, request_id: str, name: str, value: Any) -> Any:
        """A personal column's value as stored: sealed when the ledger has a sealer."""
        return value if self.sealer is None else self.sealer.seal_field(request_id, name, value)

    def _opened(self, request_id: str, name: str, stored: Any) -> Any:
        if not is_sealed_field(stored):
            return stored
        if self.sealer is None:
            raise LookupError(
                f"{name} of request {request_id} is sealed in the ledger, and this process "
                "has no data keys (DSR_SEAL_EVENTS, DSR_KEYS_DIR)"
            )
        return self.sealer.open_field(request_id, name, stored)

    def progress(self, request_id: str) -> tuple[Request | None, list[Task]]:
        """A request and all its tasks, in one read."""
        with self.session() as s:
            row = s.get(Request, request_id)
            return row, self._tasks(s, request_id) if row is not None else []

    @staticmethod
    def _tasks(s: Session, request_id: str) -> list[Task]:
        return list(
            s.scalars(select(Task).where(Task.request_id == request_id).order_by(Task.system))
        )

    def pending_tasks(self, request_id: str) -> list[Task]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Task).where(
                        Task.request_id == request_id, Task.status == TaskStatus.PENDING
                    )
                )
            )

    def tasks(self, request_id: str) -> list[Task]:
        with self.session() as s:
            return self._tasks(s, request_id)

    # -- aggregation --------------------------------------------------------
    def record_result(self, result: TaskResult) -> Recorded:
        """Store a task's first result (``first`` is False for a redelivered one), and read
        the request and its tasks as they now are, in the same transaction."""
        return self.record_results([result])[0]

    def record_results(self, results: Sequence[TaskResult]) -> list[Recorded]:
        """``record_result`` for a batch, in one transaction: each task's first result is
        stored (a later one in the batch, or a redelivery, is not ``first``), then each
        request of the batch is read once with its tasks."""
        with self.session() as s:
            conn = s.connection()
            firsts = [bool(conn.execute(_RECORD_RESULT, _result_row(r)).rowcount) for r in results]
            for i, r in enumerate(results):
                if not firsts[i] and r.status == "ok":
                    firsts[i] = self._supersede(s, r)
            audits = [_result_audit(r) for r, first in zip(results, firsts, strict=True) if first]
            if audits:
                conn.execute(_INSERT_AUDIT, audits)
            ids = sorted({r.request_id for r in results})
            requests = s.scalars(select(Request).where(Request.request_id.in_(ids)))
            rows = {row.request_id: row for row in requests}
            tasks: dict[str, list[Task]] = {}
            query = select(Task).where(Task.request_id.in_(ids)).order_by(Task.system)
            for task in s.scalars(query):
                tasks.setdefault(task.request_id, []).append(task)
            return [
                Recorded(first, rows.get(r.request_id), tasks.get(r.request_id, []))
                for r, first in zip(results, firsts, strict=True)
            ]

    def _supersede(self, s: Session, result: TaskResult) -> bool:
        """Record a late ``ok`` result over a failed or timed-out task; reopen its request
        if that had completed, so that its next completion sends the next revision.

        A late lookup of a request that completed is left alone: acting on what it found
        would be a new request's work, not a correction of this one's answer."""
        request = s.get(Request, result.request_id)
        final = request is not None and request.status not in OPEN_STATUSES
        lookup = TaskMessage.is_lookup_id(result.task_id)
        if final and request is not None and (request.status == RequestStatus.REFUSED or lookup):
            return False
        if not s.connection().execute(_SUPERSEDE_RESULT, _result_row(result)).rowcount:
            return False
        detail: dict[str, Any] = {"task_id": result.task_id, "system": result.system}
        if final and request is not None:
            detail["superseded"] = _reopen(s, request)
            request.updated_at = utcnow()
        self._audit(s, result.request_id, f"connector:{result.system}", "late_result", **detail)
        return True

    def open_task_count(self, request_id: str) -> int:
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(Task)
                    .where(Task.request_id == request_id, Task.status == TaskStatus.PENDING)
                )
                or 0
            )

    def time_out_tasks(self, request_id: str) -> int:
        now = utcnow()
        with self.session() as s:
            moved = _rowcount(
                s,
                update(Task)
                .where(Task.request_id == request_id, Task.status == TaskStatus.PENDING)
                .values(
                    status=TaskStatus.TIMED_OUT,
                    finished_at=now,
                    error="no result before the request timeout",
                ),
            )
            if moved:
                self._audit(s, request_id, "aggregate", "tasks_timed_out", count=moved)
            return int(moved)

    def complete(
        self,
        request_id: str,
        status: str,
        body: dict[str, Any],
        latency_ms: int,
        refused_parts: int | None = None,
    ) -> bool:
        """Move an open request to its final status and queue its response, exactly once.
        With ``refused_parts``, only if the request still has that many refused parts:
        a part refused while the response was built makes it be built again."""
        now = utcnow()
        with self.session() as s:
            if refused_parts is not None:
                row = s.get(Request, request_id, with_for_update=True)
                if row is None or len(row.refused_parts or []) != refused_parts:
                    return False
            moved = _rowcount(
                s,
                update(Request)
                .where(
                    Request.request_id == request_id,
                    Request.status.not_in(
                        [st.value for st in FINAL_STATUSES if st != RequestStatus.REFUSED]
                        + [RequestStatus.PARKED.value]
                    ),
                    Request.completed_at.is_(None),
                )
                .values(status=status, completed_at=now, updated_at=now, latency_ms=latency_ms),
            )
            if not moved:
                return False
            lease = now + SEND_LEASE  # the completing worker sends it
            s.add(
                Response(
                    request_id=request_id,
                    status=status,
                    body=body,
                    created_at=now,
                    lease_until=lease,
                )
            )
            self._audit(
                s,
                request_id,
                "aggregate",
                "completed",
                status=status,
                reason_codes=[r["code"] for r in body.get("reasons", [])],
                latency_ms=latency_ms,
            )
            return True

    # -- parking ---------------------------------------------------------------
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
                "parked",
                stage=stage,
                error_code=error[:64],
                where=where[:200],
                was=was,
                was_reason=was_reason,
            )
            return True

    def release_parked(
        self, request_id: str, by: str, timeout: timedelta | None = None
    ) -> tuple[str, str | None]:
        """Put a parked request back as it was when parked; the outcome (``released``,
        ``unknown_request`` or ``not_parked``) and the status it is back in. A fanned-out
        request gets ``timeout`` again for the systems it still waits on."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id, with_for_update=True)
            if row is None:
                return "unknown_request", None
            if row.status != RequestStatus.PARKED:
                return "not_parked", row.status
            parked = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.request_id == request_id, AuditEntry.action == "parked")
                .order_by(AuditEntry.id.desc())
                .limit(1)
            ).one()
            row.status = parked.detail["was"]
            row.hold_reason = parked.detail.get("was_reason")
            row.updated_at = now
            if timeout is not None and row.status == RequestStatus.FANNED_OUT:
                row.timeout_at = now + timeout
            self._audit(s, request_id, f"operator:{by}", "unparked", status=row.status)
            return "released", row.status

    # -- decisions ------------------------------------------------------------
    def extend(
        self,
        request_id: str,
        reason: str,
        decided_by: str,
        extension: Callable[[datetime], datetime] | None,
        key_id: str | None = None,
    ) -> tuple[Decided, datetime | None]:
        """Move an open request's deadline by ``extension``, once; return the outcome
        (``extended`` or why not) and the deadline. ``key_id`` (the decision's signing
        key) goes into the audit row."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id)
            if row is None:
                return Decided.UNKNOWN_REQUEST, None
            deadline = as_utc(row.deadline_at)
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
            self._audit(s, request_id, f"operator:{decided_by}", "extended", key_id=key_id, **entry)
            return Decided.EXTENDED, new

    def refuse(
        self,
        request_id: str,
        ground: str,
        reason: str,
        decided_by: str,
        key_id: str | None = None,
    ) -> Decided:
        """Refuse a request not yet fanned out on ``ground``; the outcome (``refused``,
        or why not). Its response is then built as for a refusal at intake."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id)
            if row is None:
                return Decided.UNKNOWN_REQUEST
            if row.status in FINAL_STATUSES:
                return Decided.REQUEST_CLOSED
            if row.status == RequestStatus.FANNED_OUT:
                return Decided.ALREADY_FANNED_OUT
            previous = row.status
            row.status, row.hold_reason, row.updated_at = RequestStatus.REFUSED, ground, now
            self._audit(
                s,
                request_id,
                f"operator:{decided_by}",
                "refused",
                ground=ground,
                reason=reason,
                was=previous,
                key_id=key_id,
            )
            return Decided.REFUSED

    def refuse_part(self, request_id: str, part: RefusedPart, key_id: str | None = None) -> Decided:
        """Refuse ``part`` of a request; the outcome (``refused_in_part``, or why not).

        A disclosure's part may be refused until its response is built (what was found
        is then withheld); another kind's only before fan-out (the system is never
        asked), since its effect cannot be undone."""
        now = utcnow()
        with self.session() as s:
            row = s.get(Request, request_id)
            if row is None:
                return Decided.UNKNOWN_REQUEST
            if row.status in FINAL_STATUSES or row.completed_at is not None:
                return Decided.REQUEST_CLOSED
            if part.fields and Kind(row.kind) not in PACKAGE_KINDS:
                return Decided.FIELDS_NOT_REFUSABLE
            if row.status == RequestStatus.FANNED_OUT and Kind(row.kind) not in PACKAGE_KINDS:
                return Decided.ALREADY_FANNED_OUT
            row.refused_parts = [*(row.refused_parts or []), part.model_dump(mode="json")]
            row.updated_at = now
            self._audit(
                s,
                request_id,
                f"operator:{part.decided_by}",
                "refused_in_part",
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

    # -- dead letters and redrive ----------------------------------------------
    def record_dead_letter(self, row: DeadLetter, kept: dict[str, Any] | None) -> bool:
        """Keep a dead letter, once: a redelivered copy (same ``row.id``) changes nothing.

        ``kept`` (the original event, its headers, the error's detail: what may name
        someone) is sealed under the request's data key; without a sealer or a request
        to key it by (or with nothing ``kept``), it is not kept at all. True if the letter
        was new."""
        with self.session() as s:
            if s.get(DeadLetter, row.id) is not None:
                return False
        row.sealed = None
        if self.sealer is not None and row.request_id is not None and kept is not None:
            # not a valid request id: there is no data key to seal it under
            with suppress(ValueError):
                row.sealed = self.sealer.seal_field(row.request_id, DEAD_LETTER_FIELD, kept)
        with self.session() as s:
            if s.get(DeadLetter, row.id) is not None:
                return False
            s.add(row)
            self._audit(
                s,
                row.request_id,
                "worker",
                "dead_lettered",
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
                self._audit(s, request_id, "operator", "redriven", letter=letter, source=source)
            return why_not

    def reopen_task(self, task_id: str, letter: str, timeout: timedelta) -> str | None:
        """Make a failed task pending again for a redrive of dead letter ``letter`` (marked
        redriven), and reopen its request if that had completed; None when done, else why not.

        The request's next completion sends the next response revision."""
        now = utcnow()
        with self.session() as s:
            task = s.get(Task, task_id)
            if task is None:
                return "the ledger has no such task"
            if task.status not in (TaskStatus.FAILED, TaskStatus.TIMED_OUT):
                row = s.get(DeadLetter, letter)
                if row is not None and row.redriven_at is not None:
                    return "already redriven"
                return f"the task is {task.status}, not failed"
            why_not = self._claim_letter(s, letter, now)
            if why_not is not None:
                return why_not
            request = s.get(Request, task.request_id)
            assert request is not None  # a task's request is never deleted
            detail: dict[str, Any] = {
                "letter": letter,
                "task_id": task_id,
                "system": task.system,
                "was": task.status,
            }
            if request.status != RequestStatus.FANNED_OUT:
                detail["superseded"] = _reopen(s, request)
            request.timeout_at = now + timeout
            request.updated_at = now
            task.status = TaskStatus.PENDING
            task.result = task.error = task.finished_at = None
            self._audit(s, request.request_id, "operator", "redriven", **detail)
            return None

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

    def mark_published(self, request_ids: Sequence[str]) -> None:
        with self.session() as s:
            _rowcount(
                s,
                update(Response)
                .where(Response.request_id.in_(list(request_ids)), Response.published_at.is_(None))
                .values(published_at=utcnow()),
            )

    def response(self, request_id: str) -> Response | None:
        with self.session() as s:
            return s.get(Response, request_id)

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

    # -- sweeps -------------------------------------------------------------
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

    def record_reconciled(self, count: int) -> None:
        with self.session() as s:
            self._audit(s, None, "operator", "reconciled", requests=count)

    def overdue_fan_outs(self, now: datetime | None = None) -> list[str]:
        now = now or utcnow()
        with self.session() as s:
            return list(
                s.scalars(
                    select(Request.request_id).where(
                        Request.status == RequestStatus.FANNED_OUT, Request.timeout_at < now
                    )
                )
            )

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

    @cached_property
    def provisions(self) -> ProvisionStore:
        """The provision and receipt records (Arts. 29, 30) kept in this database."""
        from services.provisions.store import ProvisionStore

        return ProvisionStore(self.engine)

    # -- reading --------------------------------------------------------------
    def notified(self, request_id: str, notice_id: str) -> bool:
        """Whether the notice ``notice_id`` was recorded as sent."""
        with self.session() as s:
            found = s.scalar(
                select(AuditEntry.id)
                .where(
                    AuditEntry.request_id == request_id,
                    AuditEntry.action == "notified",
                    AuditEntry.detail["notice_id"].as_string() == notice_id,
                )
                .limit(1)
            )
        return found is not None

    def audited_at(self, request_id: str, action: str) -> list[datetime]:
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
            self._audit(s, None, by, "audit_purged", before=before.isoformat(), count=count)
        return count

    def rejected(self) -> list[Rejected]:
        with self.session() as s:
            return list(s.scalars(select(Rejected).order_by(Rejected.id)))

    def count_by_status(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(Request.status, func.count()).group_by(Request.status))
            return {status: int(n) for status, n in rows}

    # -- monitoring: aggregate reads, one GROUP BY each, no identifiers -------
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
            AuditEntry.action == "redriven", AuditEntry.actor == "operator", system.is_not(None)
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

    # -- dashboard: recent and open rows, bounded, ids and timings only ----------
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


@dataclass(frozen=True)
class Recorded:
    """A result just recorded: whether it was the task's first, and the request now."""

    first: bool
    request: Request | None
    tasks: list[Task]


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


__all__ = [
    "Admission",
    "FinishedRequest",
    "FinishedTask",
    "Ledger",
    "OpenRequest",
    "Recorded",
    "TaskPlan",
    "as_utc",
]


def _reopen(s: Session, request: Request) -> dict[str, Any]:
    """Open a completed request again for its next revision: its response goes, and it
    waits on its tasks as fanned out. Returns what was superseded, for the audit row."""
    superseded = {"status": request.status, "revision": request.revision}
    response = s.get(Response, request.request_id)
    if response is not None:
        s.delete(response)
    request.status = RequestStatus.FANNED_OUT
    request.completed_at = None
    request.latency_ms = None
    request.revision += 1
    return superseded
