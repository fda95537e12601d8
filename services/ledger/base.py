"""The ledger's foundation: the engine, sessions, helpers and constants its parts share."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    create_engine,
    event,
)
from sqlalchemy.orm import Session, sessionmaker

from connectors.sql.engine import postgres_options
from services.crypto.sealing import Sealer, is_sealed_field
from services.ledger.models import Request, RequestStatus, Response
from services.ledger.reconnect import RECYCLE_SECONDS
from services.ledger.statements import (
    INSERT_AUDITS,
    INSERT_NEW_REJECTED,
    SELECT_REQUEST,
    SELECT_REQUESTS,
    execute_many,
    insert_new,
    load_one,
    requests_by_id,
)
from services.ledger.types import Action
from streams.records import RequestEvent, TaskResult, utcnow

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


#: Seconds a statement waits for a lock another connection holds before it fails: on
#: SQLite, its write lock ("database is locked"); on PostgreSQL, a row or table lock (an
#: operator's open transaction, a migration by hand), unless the URL's ``options`` set a
#: ``lock_timeout`` (``LockNotAvailable``). The worker's statements run on its event
#: loop: a longer wait would stop it beating, and its batches wait for a lock held long
#: without blocking (``streams.transient.patiently``). Its transactions hold the lock
#: for milliseconds.
LOCK_TIMEOUT_S = 2.0


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        options = {"timeout": LOCK_TIMEOUT_S, "check_same_thread": False}
        engine = create_engine(url, connect_args=options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # no ping before each transaction: a dropped connection is retried (``reconnect``)
    return create_engine(
        url, pool_recycle=RECYCLE_SECONDS, connect_args=postgres_options(url, LOCK_TIMEOUT_S)
    )


def as_utc(value: datetime) -> datetime:
    """Datetimes are stored as UTC; SQLite hands them back naive."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _rowcount(s: Session, statement: Executable) -> int:
    """How many rows an UPDATE moved: the guard that makes each transition happen once.

    Sessions are short and read after they write, so nothing loaded needs syncing.
    """
    options = {"synchronize_session": False}
    result = cast(CursorResult[Any], s.execute(statement, execution_options=options))
    return int(result.rowcount)


def _audit_row(request_id: str | None, actor: str, action: Action, **detail: Any) -> dict[str, Any]:
    return {
        "at": utcnow(),
        "request_id": request_id,
        "actor": actor,
        "action": action,
        "detail": detail,
    }


def _result_row(result: TaskResult) -> dict[str, Any]:
    """``statements.record_many``'s parameters for ``result``."""
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
        Action.TASK_OK if result.status == "ok" else Action.TASK_FAILED,
        task_id=result.task_id,
        changed=result.changed,
        **({"kept": result.kept} if result.kept else {}),
        **({"pending_purge": result.pending_purge} if result.pending_purge else {}),
        fields=result.fields,
        error_code=result.error_code,
        attempts=result.attempts,
        duration_ms=int((result.finished_at - result.started_at).total_seconds() * 1000),
    )


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


#: How many of a request's messages it remembers (``Request.deliveries``): far more
#: than a batch read again can hold of one request.
MAX_DELIVERIES = 32


def taken(row: Request, message: str | None) -> bool:
    """Whether the request ``row`` has taken ``message`` (its digest and where it was
    read: ``Arrival.message``), which is then read again, after a crash or an outage."""
    return message is not None and message in (row.deliveries or [])


def keep_rejected(
    conn: Connection,
    reason_code: str,
    errors: list[dict[str, Any]],
    raw: bytes,
    request_id: str | None,
    place: str | None,
) -> str | None:
    """Keep a trace of a rejected event in ``rejected_events``: its reason and a hash,
    never its content. ``place`` is where its message was read (``topic/partition/
    offset``): the same event there is the same message, read again, and kept once. The
    event's digest if it was kept now; None if it was kept before."""
    digest = hashlib.sha256(raw).hexdigest()
    row = {
        "at": utcnow(),
        "reason_code": reason_code,
        "request_id": request_id,
        "errors": errors,
        "raw_sha256": digest,
        "place": place,
    }
    return digest if insert_new(conn, INSERT_NEW_REJECTED, row) else None


def take(row: Request, message: str | None) -> None:
    """Remember that ``row`` took ``message``; its latest ``MAX_DELIVERIES``."""
    if message is not None:
        row.deliveries = [*(row.deliveries or []), message][-MAX_DELIVERIES:]


@contextmanager
def in_session(conn: Connection) -> Iterator[Session]:
    """A Session in ``conn``'s transaction, flushed when done: for the ORM's cold paths
    off a hot one (the transaction is the connection's to commit or roll back)."""
    with Session(conn, expire_on_commit=False) as s:
        yield s
        s.flush()


class LedgerBase:
    """The ledger's engine and sessions, the audit row every change writes, and the
    sealed columns' opening: what every part of the ledger uses."""

    def __init__(self, url: str, sealer: Sealer | None = None) -> None:
        self.url = url
        self.sealer = sealer
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        sqlite = url.startswith("sqlite")
        # For reads, and writes of one statement (a transaction of its own): on
        # PostgreSQL, autocommit saves the BEGIN and COMMIT round trips, and under its
        # READ COMMITTED each statement sees what it would inside a transaction.
        self._single = (
            self.engine if sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # For reads of several statements that must agree. SQLite's driver begins no
        # transaction before a SELECT, so each would see the database as it is then;
        # under PostgreSQL's READ COMMITTED each statement takes a snapshot of its own.
        self._snapshots = (
            self.engine
            if sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A connection whose statements all read the database as it was at the first."""
        with self._snapshots.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    @staticmethod
    def _audit(
        s: Session | Connection, request_id: str | None, actor: str, action: Action, **detail: Any
    ) -> None:
        # a plain Core INSERT: the audit trail is append-only, nothing for the ORM to track
        conn = s.connection() if isinstance(s, Session) else s
        execute_many(conn, INSERT_AUDITS, [_audit_row(request_id, actor, action, **detail)])

    def audit(self, request_id: str | None, actor: str, action: Action, **detail: Any) -> None:
        self.audit_many([(request_id, actor, action, detail)])

    def audit_many(
        self, entries: Sequence[tuple[str | None, str, Action, Mapping[str, Any]]]
    ) -> None:
        """Audit ``entries`` (request id, actor, action, detail) in one transaction."""
        with self._single.begin() as conn:
            execute_many(
                conn, INSERT_AUDITS, [_audit_row(r, a, act, **d) for r, a, act, d in entries]
            )

    def request(self, request_id: str) -> Request | None:
        with self._single.begin() as conn:
            return load_one(conn, SELECT_REQUEST, {"id": request_id}, Request)

    def requests(self, request_ids: Sequence[str]) -> dict[str, Request]:
        """Those of ``request_ids`` the ledger has, by id: one read for them all."""
        with self._single.begin() as conn:
            return requests_by_id(conn, SELECT_REQUESTS, request_ids)

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

    @cached_property
    def provisions(self) -> ProvisionStore:
        """The provision and receipt records (Arts. 29, 30) kept in this database."""
        from services.provisions.store import ProvisionStore

        return ProvisionStore(self.engine)
