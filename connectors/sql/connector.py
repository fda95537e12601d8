"""The SQL connector: every operation, on any database SQLAlchemy can reach.

Table and column names come from the config, are checked against the reflected
schema and are quoted by SQLAlchemy; values are always bound. Each operation
runs in one transaction; a dry run runs the same statements and rolls back, so
it reports exactly what a real run would change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from connectors.base import Connector, Identifiers
from connectors.errors import ConnectorError
from connectors.results import CheckResult, OperationResult
from connectors.sql.config import KeySpec, SQLConfig, Strategy
from connectors.sql.engine import classify, make_engine
from connectors.sql.schema import Schema, reflect
from connectors.sql.units import Unit, key_clause, needed_columns, new_units, resolve, row_unit
from connectors.sql.values import anonymised, coerce, jsonable
from streams.records import FAN_OUT_KINDS, Change, CorrectionReport, Kind


class SQLConnector(Connector[SQLConfig]):
    """Personal data in SQL tables, each keyed by one of the subject's identifiers, or by
    several that only together identify them (a composite key)."""

    name = "sql"
    Config = SQLConfig
    capabilities = FAN_OUT_KINDS

    def __init__(self, system: str, config: Mapping[str, Any] | SQLConfig) -> None:
        super().__init__(system, config)
        self._engine = make_engine(system, self.config)
        self._schema: Schema | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SQLConnector system={self.system!r} url={self.config.masked_url()!r}>"

    @classmethod
    def kinds_for(cls, config: SQLConfig) -> frozenset[Kind]:
        cfg = config
        kinds = {Kind.DISCLOSURE} if cfg.tables else set()
        if any(t.correctable for t in cfg.tables):
            kinds.add(Kind.CORRECTION)
        if any(t.erasure for t in cfg.tables):
            kinds.add(Kind.ERASURE)
        if cfg.suspension or any(t.suspension for t in cfg.tables):
            kinds.add(Kind.SUSPENSION)
        if cfg.provision_log:
            kinds.add(Kind.THIRD_PARTY_RECORDS)
            if cfg.provision_log.stopped_column:
                kinds.add(Kind.THIRD_PARTY_STOP)
        return frozenset(kinds)

    def check(self) -> CheckResult:
        self._schema = None
        try:
            with self._transaction(commit=False) as (_, schema):
                tables = sum(len(m.physical) for m in schema.tables)
        except ConnectorError as exc:
            return CheckResult(False, str(exc))
        extra = " and the provision log" if schema.provision_log is not None else ""
        return CheckResult(True, f"{tables} tables{extra} match the config")

    def close(self) -> None:
        self._engine.dispose()

    # -- operations ---------------------------------------------------------

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self._require(Kind.DISCLOSURE)
        with self._transaction(commit=False) as (conn, schema):
            reach, found = resolve(conn, schema, identifiers)
            records: list[dict[str, Any]] = []
            for m in schema.tables:
                for t in m.physical:
                    rows, units = _read(
                        conn, t, m.spec.key, m.spec.identifiers, m.spec.columns, reach
                    )
                    records += rows
                    found += units
        return OperationResult(
            records=records,
            fields=sorted({k for r in records for k in r} - {"_source"}),
            identities=new_units(found, identifiers),
        )

    def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        self._require(Kind.THIRD_PARTY_RECORDS)
        spec = self.config.provision_log
        assert spec is not None
        with self._transaction(commit=False) as (conn, schema):
            assert schema.provision_log is not None
            reach, found = resolve(conn, schema, identifiers)
            records, units = _read(conn, schema.provision_log, spec.key, {}, spec.columns, reach)
        return OperationResult(
            records=records,
            fields=sorted({k for r in records for k in r} - {"_source"}),
            identities=new_units(found + units, identifiers),
        )

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.CORRECTION)
        wanted = {c.field: c.value for c in changes}
        entries: list[dict[str, Any]] = []
        changed = 0
        with self._transaction(commit=not dry_run) as (conn, schema):
            reach, found = resolve(conn, schema, identifiers)
            for m in schema.tables:
                fields = [f for f in wanted if f in m.spec.correctable]
                if not fields:
                    continue
                for t in m.physical:
                    where = key_clause(t, m.spec.key, reach)
                    if where is not None:
                        n, replaced = _correct_rows(conn, t, where, {f: wanted[f] for f in fields})
                        changed += n
                        entries += replaced
            present = {c.name for m in schema.tables for c in m.table.columns}
        correctable = {f for m in schema.tables for f in m.spec.correctable}
        return OperationResult(
            changed=changed,
            fields=sorted({e["field"] for e in entries}),
            correction=CorrectionReport.of(entries, wanted, present, correctable),
            identities=new_units(found, identifiers),
            dry_run=dry_run,
        )

    def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.SUSPENSION)
        actions: list[dict[str, Any]] = []
        fields: set[str] = set()
        with self._transaction(commit=not dry_run) as (conn, schema):
            reach, found = resolve(conn, schema, identifiers)
            for m in schema.tables:
                where = key_clause(m.table, m.spec.key, reach)
                if m.suspension is None or where is None:
                    continue
                if m.suspension.flag_column is not None:
                    flag = m.table.c[m.suspension.flag_column]
                    n = _set_flag(conn, m.table, flag, where)
                    actions.append(
                        {"table": m.table.name, "action": "flag", "column": flag.name, "rows": n}
                    )
                    fields.update([flag.name] if n else [])
                else:
                    assert m.shadow is not None
                    names = [c.name for c in m.table.columns]
                    rows = select(*m.table.c).where(where)
                    conn.execute(insert(m.shadow).from_select(names, rows))
                    n = conn.execute(delete(m.table).where(where)).rowcount
                    actions.append(
                        {"table": m.table.name, "action": "move", "to": m.shadow.name, "rows": n}
                    )
                    fields.update(names if n else [])
        return OperationResult(
            changed=sum(a["rows"] for a in actions),
            fields=sorted(fields),
            details={"tables": actions},
            identities=new_units(found, identifiers),
            dry_run=dry_run,
        )

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.ERASURE)
        actions: list[dict[str, Any]] = []
        fields: set[str] = set()
        with self._transaction(commit=not dry_run) as (conn, schema):
            reach, found = resolve(conn, schema, identifiers)
            for m in schema.tables:
                erasure = m.spec.erasure
                if erasure is None:
                    continue
                for t in m.physical:
                    where = key_clause(t, m.spec.key, reach)
                    if where is None:
                        continue
                    if erasure.deletes:
                        n = conn.execute(delete(t).where(where)).rowcount
                        actions.append({"table": t.name, "action": "delete", "rows": n})
                        fields.update(c.name for c in t.columns if n)
                    else:
                        n, touched = _anonymise(conn, t, where, erasure.columns)
                        actions.append(
                            {
                                "table": t.name,
                                "action": "anonymise",
                                "columns": dict(erasure.columns),
                                "rows": n,
                            }
                        )
                        fields.update(touched)
        return OperationResult(
            changed=sum(a["rows"] for a in actions),
            kept=sum(a["rows"] for a in actions if a["action"] == "anonymise"),
            fields=sorted(fields),
            details={"tables": actions},
            identities=new_units(found, identifiers),
            dry_run=dry_run,
        )

    def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.THIRD_PARTY_STOP)
        spec = self.config.provision_log
        assert spec is not None and spec.stopped_column is not None
        n = 0
        with self._transaction(commit=not dry_run) as (conn, schema):
            log = schema.provision_log
            assert log is not None
            reach, found = resolve(conn, schema, identifiers)
            where = key_clause(log, spec.key, reach)
            if where is not None:
                n = _set_flag(conn, log, log.c[spec.stopped_column], where)
        return OperationResult(
            changed=n,
            fields=[spec.stopped_column] if n else [],
            details={
                "tables": [
                    {"table": log.name, "action": "flag", "column": spec.stopped_column, "rows": n}
                ]
            },
            identities=new_units(found, identifiers),
            dry_run=dry_run,
        )

    # -- plumbing -----------------------------------------------------------

    def _require(self, kind: Kind) -> None:
        if not self.supports(kind):
            raise self._not_supported(kind)

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[tuple[Connection, Schema]]:
        """One connection and transaction; rolled back unless ``commit``."""
        try:
            with self._engine.connect() as conn, conn.begin() as trans:
                yield conn, self._reflect(conn)
                if not commit:
                    trans.rollback()
        except ConnectorError:
            raise
        except sa_exc.SQLAlchemyError as exc:
            self._schema = None  # the schema may have changed; reflect again next time
            raise classify(self.system, exc) from exc

    def _reflect(self, conn: Connection) -> Schema:
        with self._lock:
            if self._schema is None:
                self._schema = reflect(self.system, self.config, conn)
            return self._schema


# -- queries --------------------------------------------------------------


def _read(
    conn: Connection,
    table: Table,
    key: list[KeySpec],
    identifiers: dict[str, str],
    columns: list[str] | None,
    reach: list[Unit],
) -> tuple[list[dict[str, Any]], list[Unit]]:
    """The subject's rows (the disclosed columns), and each row's identity unit."""
    where = key_clause(table, key, reach)
    if where is None:
        return [], []
    shown = columns or [c.name for c in table.columns]
    names = list(dict.fromkeys([*shown, *needed_columns(key, identifiers)]))
    query = select(*(table.c[n] for n in names)).where(where).order_by(*table.primary_key.columns)
    records, units = [], []
    for row in conn.execute(query).mappings():
        records.append({**{k: jsonable(row[k]) for k in shown}, "_source": table.name})
        units.append(row_unit(row, key, identifiers))
    return records, units


def _set_flag(conn: Connection, table: Table, flag: Column[Any], where: ColumnElement[bool]) -> int:
    on = coerce(flag, True, table.name)
    stmt = update(table).where(where, or_(flag.is_(None), flag != on)).values({flag.name: on})
    return conn.execute(stmt).rowcount


def _anonymise(
    conn: Connection, table: Table, where: ColumnElement[bool], strategies: dict[str, Strategy]
) -> tuple[int, set[str]]:
    """Anonymise the subject's rows in place; returns rows changed and columns touched."""
    names = list(strategies)
    cols = [table.c[n] for n in names]
    rows = conn.execute(select(*cols).where(where)).all()
    changed, touched = 0, set[str]()
    # Rows with the same old values get the same new ones, so no primary key is needed.
    for old, _ in _tally(tuple(row) for row in rows):
        new = {n: anonymised(c, strategies[n], o) for n, c, o in zip(names, cols, old, strict=True)}
        diff = {n: v for (n, v), o in zip(new.items(), old, strict=True) if v != o}
        if not diff:
            continue
        same = and_(where, *(c.is_not_distinct_from(o) for c, o in zip(cols, old, strict=True)))
        changed += conn.execute(update(table).where(same).values(diff)).rowcount
        touched.update(diff)
    return changed, touched


def _correct_rows(
    conn: Connection, t: Table, where: ColumnElement[bool], wanted: Mapping[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """Set the ``wanted`` fields of the rows of ``t`` that ``where`` selects: how many rows
    changed, and each old value replaced, with how many rows held it."""
    fields = list(wanted)
    new = {f: coerce(t.c[f], wanted[f], t.name) for f in fields}
    rows = conn.execute(select(*(t.c[f] for f in fields)).where(where)).all()
    entries = [
        {"table": t.name, "field": f, "old": jsonable(old), "new": jsonable(new[f]), "rows": n}
        for i, f in enumerate(fields)
        for old, n in _tally(row[i] for row in rows if row[i] != new[f])
    ]
    differs = or_(*(t.c[f].is_distinct_from(new[f]) for f in fields))
    return conn.execute(update(t).where(where, differs).values(new)).rowcount, entries


def _tally(values: Any) -> list[tuple[Any, int]]:
    """Distinct values with their counts, in first-seen order (values need not be hashable)."""
    out: list[list[Any]] = []
    for v in values:
        for pair in out:
            if pair[0] == v:
                pair[1] += 1
                break
        else:
            out.append([v, 1])
    return [(v, n) for v, n in out]
