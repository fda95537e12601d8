"""Reflect the configured tables and check the config against the live schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table
from sqlalchemy import exc as sa_exc

from connectors.errors import ConfigError
from connectors.sql.config import SQLConfig, Strategy, SuspensionSpec, TableSpec
from connectors.sql.values import mask_value, python_type


@dataclass(frozen=True)
class Mapped:
    """A configured table, reflected, with its suppression table if it has one."""

    spec: TableSpec
    table: Table
    shadow: Table | None
    suspension: SuspensionSpec | None

    @property
    def physical(self) -> list[Table]:
        return [self.table] if self.shadow is None else [self.table, self.shadow]


@dataclass(frozen=True)
class Schema:
    tables: list[Mapped]
    provision_log: Table | None


def reflect(system: str, cfg: SQLConfig, conn: Connection) -> Schema:
    """Reflect every configured table and check the config against it."""
    found = _Reflection(MetaData(schema=cfg.schema_name), conn)
    mapped: list[Mapped] = []
    for spec in cfg.tables:
        table = found.load(spec.name)
        suspension = spec.suspension or cfg.suspension
        shadow = found.load(suspension.move_to) if suspension and suspension.move_to else None
        if table is not None:
            found.check_table(table, spec, suspension, shadow)
            mapped.append(Mapped(spec, table, shadow, suspension))
    log = None
    if (pl := cfg.provision_log) is not None and (log := found.load(pl.table)) is not None:
        found.need(log, [p.column for p in pl.key], "key")
        found.need(log, pl.columns or [], "provision log")
        found.need(log, [pl.stopped_column] if pl.stopped_column else [], "stopped")
    if found.problems:
        raise ConfigError(
            f"system {system!r}: the database does not match the config:\n"
            + "\n".join(f"  - {p}" for p in found.problems)
        )
    return Schema(mapped, log)


@dataclass
class _Reflection:
    """Tables reflected from the database, and what does not match the config."""

    meta: MetaData
    conn: Connection
    problems: list[str] = field(default_factory=list)

    def load(self, name: str) -> Table | None:
        try:
            return Table(name, self.meta, autoload_with=self.conn)
        except sa_exc.NoSuchTableError:
            self.problems.append(f"table {name!r} does not exist")
            return None

    def need(self, table: Table, columns: Sequence[str], role: str) -> None:
        missing = [c for c in columns if c not in table.c]
        if missing:
            self.problems.append(f"{table.name}: no {role} column(s) {missing}")

    def check_table(
        self,
        table: Table,
        spec: TableSpec,
        suspension: SuspensionSpec | None,
        shadow: Table | None,
    ) -> None:
        """Every column the table's config names exists, and each erasure strategy fits
        its column's type."""
        self.need(table, [p.column for p in spec.key], "key")
        self.need(table, spec.columns or [], "disclosed")
        self.need(table, list(spec.identifiers.values()), "identifier")
        self.need(table, spec.correctable, "correctable")
        if spec.erasure is not None:
            self.need(table, list(spec.erasure.columns), "erasure")
            for col, strategy in spec.erasure.columns.items():
                if col in table.c and (why := cannot(table.c[col], strategy)):
                    self.problems.append(f"{table.name}.{col}: cannot {strategy} it: {why}")
        if suspension is not None and suspension.flag_column is not None:
            self.need(table, [suspension.flag_column], "suspension flag")
        if shadow is not None:
            self.need(shadow, [c.name for c in table.columns], "suppression")


def cannot(column: Column[Any], strategy: Strategy) -> str | None:
    """Why ``column`` cannot be anonymised with ``strategy``, or None if it can."""
    if strategy == "null":
        return "it is NOT NULL" if not column.nullable or column.primary_key else None
    if strategy == "mask":
        return None if mask_value(column) is not None else "no mask for its type"
    length = getattr(column.type, "length", None)
    if python_type(column) is not str or (length is not None and length < 64):
        return "a sha256 hex digest needs a text column of 64 characters or more"
    return None
