"""The hot path's statements, built once, and the rows they read as ledger entities.

A request passes through the same few reads and writes a dozen times. Run on a Core
connection, with their parameters bound at execution, they skip what a Session costs
(building the statement and its cache key again, the unit of work, the identity map),
several times the SQL itself. The entities they read are built as the ORM loads
them, outside any session: the callers only read them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Column,
    Connection,
    CursorResult,
    Executable,
    String,
    Table,
    bindparam,
    column,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import instrumentation
from sqlalchemy.orm.attributes import instance_dict

from services.ledger.models import (
    FINAL_STATUSES,
    AuditEntry,
    Base,
    DeadLetter,
    Rejected,
    Request,
    RequestStatus,
    Response,
    Task,
)
from services.ledger.types import Action
from streams.records import TaskStatus

_REQUEST_TABLE = cast(Table, Request.__table__)
_TASK_TABLE = cast(Table, Task.__table__)
_RESPONSE_TABLE = cast(Table, Response.__table__)
_DEAD_LETTER_TABLE = cast(Table, DeadLetter.__table__)
_REJECTED_TABLE = cast(Table, Rejected.__table__)
_AUDIT_TABLE = cast(Table, AuditEntry.__table__)
_REQUESTS = _REQUEST_TABLE.c
_TASKS = _TASK_TABLE.c
_RESPONSES = _RESPONSE_TABLE.c
_AUDIT = _AUDIT_TABLE.c

INSERT_RESPONSE = insert(_RESPONSE_TABLE)

SELECT_REQUEST = select(_REQUEST_TABLE).where(_REQUESTS.request_id == bindparam("id"))
SELECT_REQUESTS = select(_REQUEST_TABLE).where(
    _REQUESTS.request_id.in_(bindparam("ids", expanding=True))
)
#: Which of some requests the ledger has.
SELECT_REQUEST_IDS = SELECT_REQUESTS.with_only_columns(_REQUESTS.request_id)
#: ``SELECT_REQUESTS``, held until the transaction ends (on PostgreSQL), always taken in
#: one order, so two transactions that each hold several never wait for each other.
LOCK_REQUESTS = SELECT_REQUESTS.order_by(_REQUESTS.request_id).with_for_update()
#: A request's identity graph grown by what a lookup found (``Tasks.record_results``).
UPDATE_GRAPH = (
    update(_REQUEST_TABLE)
    .where(_REQUESTS.request_id == bindparam("id"))
    .values(discovered=bindparam("graph"), subject_digests=bindparam("digests"))
)
SELECT_TASKS = (
    select(_TASK_TABLE).where(_TASKS.request_id == bindparam("id")).order_by(_TASKS.system)
)
SELECT_TASKS_OF = (
    select(_TASK_TABLE)
    .where(_TASKS.request_id.in_(bindparam("ids", expanding=True)))
    .order_by(_TASKS.system)
)
SELECT_RESPONSES = select(_RESPONSE_TABLE).where(
    _RESPONSES.request_id.in_(bindparam("ids", expanding=True))
)
#: The notices recorded as sent to some requests' principals (``notified``).
SELECT_NOTIFIED = select(_AUDIT.request_id, AuditEntry.detail["notice_id"].as_string()).where(
    _AUDIT.request_id.in_(bindparam("ids", expanding=True)),
    _AUDIT.action == Action.NOTIFIED.value,
)

#: Accepted requests fanned out (``Tasks.fan_out_many``): once; the ids of those it
#: fanned out now.
FAN_OUT = (
    update(_REQUEST_TABLE)
    .where(
        _REQUESTS.request_id.in_(bindparam("ids", expanding=True)),
        _REQUESTS.status == RequestStatus.ACCEPTED.value,
    )
    .values(
        status=RequestStatus.FANNED_OUT.value,
        timeout_at=bindparam("timeout_at"),
        updated_at=bindparam("updated_at"),
    )
    .returning(_REQUESTS.request_id)
)
#: The statuses a request is not completed from: final, but refused (its letter is its
#: response), and parked.
_NOT_COMPLETABLE = [st.value for st in FINAL_STATUSES if st != RequestStatus.REFUSED] + [
    RequestStatus.PARKED.value
]
#: An open request completed (``Tasks.complete``): once. A refused one is completed too.
COMPLETE = (
    update(_REQUEST_TABLE)
    .where(
        _REQUESTS.request_id == bindparam("id"),
        _REQUESTS.status.not_in([literal(st) for st in _NOT_COMPLETABLE]),  # in executemany
        _REQUESTS.completed_at.is_(None),
    )
    .values(
        status=bindparam("status"),
        completed_at=bindparam("completed_at"),
        updated_at=bindparam("updated_at"),
        latency_ms=bindparam("latency_ms"),
    )
)


def completable(row: Request) -> bool:
    """Whether ``COMPLETE`` completes the request ``row``, held (``hold_requests``)."""
    return row.status not in _NOT_COMPLETABLE and row.completed_at is None


MARK_PUBLISHED = (
    update(_RESPONSE_TABLE)
    .where(
        _RESPONSES.request_id.in_(bindparam("ids", expanding=True)),
        _RESPONSES.published_at.is_(None),
    )
    .values(published_at=bindparam("published_at"))
)

#: What recording a task's result sets (``base._result_row``'s parameters).
_RESULT_VALUES: dict[Any, Any] = {
    _TASKS.status: bindparam("status"),
    _TASKS.attempts: bindparam("attempts"),
    _TASKS.error: bindparam("error"),
    _TASKS.result: bindparam("result"),
    _TASKS.finished_at: bindparam("finished_at"),
}
_RESULT_COLUMNS = ("id", "status", "attempts", "error", "result", "finished_at")
#: Tasks in one ``record_many`` statement, at most (a batch of results is one or two).
RECORD_MANY_MAX = 128


def record_many(dialect: str, rows: Sequence[Mapping[str, Any]]) -> tuple[Executable, Any]:
    """Record the results of many tasks (``base._result_row``s, one a task) on those
    still pending, in one statement, which returns the ids of those it recorded; with its
    parameters. One round trip, where a statement a task costs one each."""
    if dialect == "postgresql":
        return _RECORD_RESULTS.statement, _RECORD_RESULTS.params(rows)
    params = {f"v{i}_{name}": row[name] for i, row in enumerate(rows) for name in _RESULT_COLUMNS}
    return _record_many(len(rows)), params


@functools.cache
def _record_many(n: int) -> Executable:
    """``record_many``'s statement for ``n`` tasks on SQLite, built once (and so compiled
    once: a Core VALUES construct would be compiled again at each execution)."""
    types = [_TASKS.task_id.type, *(_TASKS[name].type for name in _RESULT_COLUMNS[1:])]
    rows = ", ".join(
        "(" + ", ".join(f":v{i}_{name}" for name in _RESULT_COLUMNS) + ")" for i in range(n)
    )
    # VALUES names its columns column1, column2, ... on SQLite and PostgreSQL alike.
    given = {name: f"given.column{j}" for j, name in enumerate(_RESULT_COLUMNS, 1)}
    sets = ", ".join(f"{name} = {given[name]}" for name in _RESULT_COLUMNS[1:])
    # The statement starts with UPDATE: Python's sqlite3 opens the transaction only
    # before a statement that starts with INSERT, UPDATE, DELETE or REPLACE, and ran one
    # that started with WITH on its own, committed at once (a crash before the batch's
    # commit then left its results recorded without the rest of the batch).
    sql = (
        f"UPDATE tasks SET {sets} FROM (VALUES {rows}) AS given "
        f"WHERE tasks.task_id = {given['id']} "
        f"AND tasks.status = '{TaskStatus.PENDING.value}' RETURNING tasks.task_id"
    )
    binds = [
        bindparam(f"v{i}_{name}", type_=type_)
        for i in range(n)
        for name, type_ in zip(_RESULT_COLUMNS, types, strict=True)
    ]
    return text(sql).bindparams(*binds).columns(_TASKS.task_id)


@dataclass(frozen=True)
class JsonRows:
    """A PostgreSQL statement over many rows that takes them as one JSON array, which
    ``json_to_recordset`` turns back into rows: its text is the same whatever the rows'
    number, so the driver parses it and the server plans it once, and the rows cross
    as one parameter. (A VALUES list, a row's parameters each, is a statement of its own
    at each length, which the driver parses again at each execution; an executemany
    sends and adapts each row's parameters on their own.)"""

    statement: Executable
    columns: tuple[str, ...]

    def params(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        given = [{name: _jsonable(row[name]) for name in self.columns} for row in rows]
        return {"rows": json.dumps(given)}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _given(columns: Iterable[Column[Any]], **renamed: str) -> Any:
    """``JsonRows``' rows, named ``given``, of the JSON array parameter ``rows``: a
    column each of ``columns`` (``renamed``: by another name)."""
    rows = cast_(bindparam("rows", type_=String), postgresql.JSON)
    named = [column(renamed.get(c.name, c.name), c.type) for c in columns]
    return (
        func.json_to_recordset(rows)
        .table_valued(*named)
        .render_derived(name="given", with_types=True)
    )


def _insert_rows(
    table: Table, names: Collection[str] = ()
) -> tuple[postgresql.Insert, tuple[str, ...]]:
    """``table``'s INSERT of ``JsonRows`` (of the columns ``names``, or every column but
    an autoincrement key: the others take their defaults), with the columns its rows
    give."""
    columns = [c for c in table.c if c.name in names or not names and c.autoincrement is not True]
    names = tuple(c.name for c in columns)
    return postgresql.insert(table).from_select(names, select(_given(columns))), names


def execute_many(
    conn: Connection,
    statements: Mapping[str, Executable | JsonRows],
    rows: Sequence[Mapping[str, Any]],
) -> CursorResult[Any] | None:
    """Execute the dialect's statement of ``statements`` for ``rows``, in one round trip;
    for no rows, nothing."""
    if not rows:
        return None
    statement = statements[conn.dialect.name]
    if isinstance(statement, JsonRows):
        return conn.execute(statement.statement, statement.params(rows))
    return conn.execute(statement, rows[0] if len(rows) == 1 else rows)


#: Audit entries, by dialect (``execute_many``).
INSERT_AUDITS: dict[str, Executable | JsonRows] = {
    "postgresql": JsonRows(*_insert_rows(_AUDIT_TABLE)),
    "sqlite": insert(_AUDIT_TABLE),
}

_GIVEN_RESULTS = _given(
    [_TASKS.task_id, *(_TASKS[name] for name in _RESULT_COLUMNS[1:])], task_id="id"
)
_RECORD_RESULTS = JsonRows(
    update(_TASK_TABLE)
    .where(
        _TASKS.task_id == _GIVEN_RESULTS.c.id,
        _TASKS.status == TaskStatus.PENDING.value,
    )
    .values({_TASKS[name]: _GIVEN_RESULTS.c[name] for name in _RESULT_COLUMNS[1:]})
    .returning(_TASKS.task_id),
    _RESULT_COLUMNS,
)


#: A late ``ok`` result supersedes a failure or a time-out: the effect is in place, whatever
#: the task's earlier attempts reported (a runner restarted with the broker, a system that
#: answered after the request's timeout).
SUPERSEDE_RESULT = (
    update(_TASK_TABLE)
    .where(
        _TASKS.task_id == bindparam("id"),
        _TASKS.status.in_([TaskStatus.FAILED.value, TaskStatus.TIMED_OUT.value]),
    )
    .values(_RESULT_VALUES)
)

E = TypeVar("E", bound=Base)
Base.registry.configure()  # the mappers' attributes, which ``load`` fills, set up now


def load(
    conn: Connection, statement: Executable, params: Mapping[str, Any], entity: type[E]
) -> list[E]:
    """The rows ``statement`` selects (all of ``entity``'s columns), as ``entity``s."""
    new = instrumentation.manager_of_class(entity).new_instance
    rows = conn.execute(statement, params)
    keys = tuple(rows.keys())
    found = []
    for row in rows:
        obj = new()
        instance_dict(obj).update(zip(keys, row, strict=True))
        found.append(obj)
    return found


def load_one(
    conn: Connection, statement: Executable, params: Mapping[str, Any], entity: type[E]
) -> E | None:
    found = load(conn, statement, params, entity)
    return found[0] if found else None


def _if_new(
    table: Table, key: Column[Any], unique: Sequence[Column[Any]] = ()
) -> dict[str, Executable]:
    """By dialect: ``table``'s INSERT that skips a row whose ``key`` (or ``unique``
    columns) is there already (another worker inserted it at once, in a rebalance, or a
    batch read again), returning the keys inserted."""
    index = list(unique) or [key]
    return {
        name: dialect_insert(table).on_conflict_do_nothing(index_elements=index).returning(key)
        for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
    }


def _many_if_new(
    table: Table, key: Column[str], names: Collection[str] = ()
) -> dict[str, Executable | JsonRows]:
    """``_if_new`` for many rows at once, of the columns ``names`` (default: all): on
    PostgreSQL ``JsonRows``."""
    many, given = _insert_rows(table, names)
    new = many.on_conflict_do_nothing(index_elements=[key]).returning(key)
    return {"sqlite": _if_new(table, key)["sqlite"], "postgresql": JsonRows(new, given)}


#: The columns a request is admitted with (``Intake.admit_many``); the others take their
#: defaults.
ADMITTED_COLUMNS = (
    "request_id",
    "kind",
    "regulation",
    "status",
    "hold_reason",
    "received_at",
    "deadline_at",
    "event",
    "subject_digests",
    "deliveries",
    "created_at",
    "updated_at",
)
INSERT_NEW_REQUESTS = _many_if_new(_REQUEST_TABLE, _REQUESTS.request_id, ADMITTED_COLUMNS)
INSERT_NEW_TASKS = _many_if_new(_TASK_TABLE, _TASKS.task_id)
INSERT_NEW_DEAD_LETTER = _if_new(_DEAD_LETTER_TABLE, _DEAD_LETTER_TABLE.c.id)
#: A rejected event, unless the same delivery of it is recorded (``Rejected``).
INSERT_NEW_REJECTED = _if_new(
    _REJECTED_TABLE,
    _REJECTED_TABLE.c.id,
    (_REJECTED_TABLE.c.raw_sha256, _REJECTED_TABLE.c.place),
)


def insert_new(
    conn: Connection,
    statements: Mapping[str, Executable | JsonRows],
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Any],
) -> set[str]:
    """Insert ``rows`` (or a row) with ``statements`` (``INSERT_NEW_*``), in one
    statement; the keys of those inserted now."""
    if isinstance(rows, Mapping):
        return insert_new(conn, statements, [rows])
    inserted = execute_many(conn, statements, rows)
    return set(inserted.scalars()) if inserted is not None else set()


def requests_by_id(
    conn: Connection, statement: Executable, ids: Collection[str]
) -> dict[str, Request]:
    """The requests of ``ids`` that ``statement`` selects, by id."""
    return {row.request_id: row for row in load(conn, statement, {"ids": list(ids)}, Request)}


def responses_by_id(conn: Connection, ids: Collection[str]) -> dict[str, Response]:
    """The responses of the requests ``ids``, by request id."""
    found = load(conn, SELECT_RESPONSES, {"ids": list(ids)}, Response)
    return {row.request_id: row for row in found}


def notified(conn: Connection, ids: Collection[str]) -> set[tuple[str, str]]:
    """The notices recorded as sent to the principals of the requests ``ids``, as
    (request id, notice id)."""
    rows = conn.execute(SELECT_NOTIFIED, {"ids": list(ids)})
    return {(request_id, notice_id) for request_id, notice_id in rows}


def hold_requests(conn: Connection, ids: Collection[str]) -> dict[str, Request]:
    """The requests ``ids``, by id, which no other transaction may change until
    ``conn``'s ends. PostgreSQL locks their rows, always in one order. On SQLite the
    transaction takes the database's write lock before it reads: a read first would let
    another writer commit before this one's first write, which then fails."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return requests_by_id(conn, SELECT_REQUESTS, ids)
    return requests_by_id(conn, LOCK_REQUESTS, ids)
