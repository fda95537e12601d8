"""Finding the subject's rows by identity units, never by parts of two people's.

A *unit* is a mapping of identifiers that belong to one person (the call's own
identifiers, or what one row holds). A row is the subject's when one unit
supplies every part of its table's key and each part equals the row's column.
Identifiers found in one row are only ever combined with the unit that found
that row, so a composite key such as (country_code, phone) is never filled with
one person's country code and another's phone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, or_, select

from connectors.errors import FatalError
from connectors.sql.config import KeySpec
from connectors.sql.schema import Schema
from connectors.sql.values import coerce, jsonable

Unit = dict[str, str]


def key_clause(
    table: Table, key: Sequence[KeySpec], units: Iterable[Mapping[str, str]]
) -> ColumnElement[bool] | None:
    """Rows whose every key column equals one unit's value; None when no unit has
    every part (or a value that could be in the column)."""
    matches: list[tuple[Any, ...]] = []
    for unit in units:
        values = _key_values(table, key, unit)
        if values is not None and values not in matches:
            matches.append(values)
    if not matches:
        return None
    if len(key) == 1:
        return table.c[key[0].column].in_([v for (v,) in matches])
    return or_(
        *(and_(*(table.c[p.column] == v for p, v in zip(key, vs, strict=True))) for vs in matches)
    )


def _key_values(
    table: Table, key: Sequence[KeySpec], unit: Mapping[str, str]
) -> tuple[Any, ...] | None:
    values = []
    for part in key:
        raw = unit.get(part.identifier)
        if not raw:
            return None  # the unit lacks a part: it cannot find anyone here
        try:
            values.append(coerce(table.c[part.column], raw, table.name))
        except FatalError:
            return None  # e.g. "abc" for an integer key: it matches no row
    return tuple(values)


def needed_columns(key: Sequence[KeySpec], identifiers: Mapping[str, str]) -> list[str]:
    """The columns a row's identity unit is read from: its key parts, then its identifiers."""
    names = [p.column for p in key] + list(identifiers.values())
    return list(dict.fromkeys(names))


def row_unit(
    row: Mapping[Any, Any], key: Sequence[KeySpec], identifiers: Mapping[str, str]
) -> Unit:
    """One row's identity: its key parts and its ``identifiers:`` columns, together."""
    pairs = [(p.identifier, p.column) for p in key] + list(identifiers.items())
    return {name: str(jsonable(row[col])) for name, col in pairs if row[col] is not None}


def new_units(units: Iterable[Unit], given: Mapping[str, str]) -> list[Unit]:
    """Each unit once, leaving out those that tell nothing beyond ``given`` or beyond
    a larger unit found (an order row's customer_id, next to the customer's row)."""
    distinct: list[Unit] = []
    for unit in units:
        if unit and unit not in distinct and any(given.get(k) != v for k, v in unit.items()):
            distinct.append(unit)
    return [u for u in distinct if not any(u != o and u.items() <= o.items() for o in distinct)]


def resolve(
    conn: Connection, schema: Schema, given: Mapping[str, str]
) -> tuple[list[Unit], list[Unit]]:
    """The units to find the subject's rows by, and the identities found on the way.

    Starting from ``given``, each row of a table with ``identifiers:`` that a unit
    finds yields a further unit: the unit that found it plus the row's own values
    (one person, reached through their own row). Nothing else is combined.
    """
    start = {k: v for k, v in given.items() if v}
    reach: list[Unit] = [start]
    found: list[Unit] = []
    frontier = [start]
    for _ in range(len(schema.tables)):  # each pass can only reach one table further
        grown: list[Unit] = []
        for m in schema.tables:
            if not m.spec.identifiers:
                continue
            cols = needed_columns(m.spec.key, m.spec.identifiers)
            for t in m.physical:
                for source in frontier:
                    where = key_clause(t, m.spec.key, [source])
                    if where is None:
                        continue
                    for row in conn.execute(
                        select(*(t.c[c] for c in cols)).where(where)
                    ).mappings():
                        unit = row_unit(row, m.spec.key, m.spec.identifiers)
                        if unit not in found:
                            found.append(unit)
                        merged = {**source, **unit}
                        if merged not in reach and merged not in grown:
                            grown.append(merged)
        if not grown:
            break
        reach += grown
        frontier = grown
    return reach, found
