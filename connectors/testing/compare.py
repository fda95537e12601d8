"""Comparing what a connector returned: leaks between subjects, and values left behind."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

Record = Mapping[str, Any]

#: Values shorter than this (``1``, ``"JP"``) are too common to tell two people apart.
MIN_LENGTH = 3


def fields(record: Record, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(field, value)`` pairs of a record, nested ones as ``a.b``; ``_source`` left out."""
    for key, value in record.items():
        if key == "_source" and not prefix:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from fields(value, f"{name}.")
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, Mapping):
                    yield from fields(item, f"{name}.")
                else:
                    yield name, item
        else:
            yield name, value


def telling(value: Any) -> str | None:
    """``value`` as text if it can tell one person from another, else None."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value)
    return text if len(text) >= MIN_LENGTH else None


def where(record: Record, field: str) -> str:
    return f"{record.get('_source', '?')}.{field}"


def values_by_field(records: Iterable[Record]) -> dict[str, set[str]]:
    """Every telling value of each field."""
    out: dict[str, set[str]] = {}
    for record in records:
        for name, value in fields(record):
            if (text := telling(value)) is not None:
                out.setdefault(name, set()).add(text)
    return out


def identifier_hits(records: Iterable[Record], identifiers: Mapping[str, str]) -> list[str]:
    """Where a value of ``identifiers`` shows in ``records``."""
    return [
        f"{where(record, name)} = {str(value)!r} holds the identifier {ident!r}"
        for record in records
        for name, value in fields(record)
        if (ident := _held(value, identifiers))
    ]


def leaks(
    mine: Sequence[Record],
    theirs: Sequence[Record],
    their_ids: Mapping[str, str],
    *,
    by_value: bool = True,
) -> list[str]:
    """What of another person (``theirs``, ``their_ids``) shows in ``mine``.

    A record equal to one of theirs, one of their identifiers, and (``by_value``)
    any field holding a value that field holds in their records.
    """
    found = []
    whole = {_canonical(r) for r in theirs}
    their_values = values_by_field(theirs) if by_value else {}
    for record in mine:
        if _canonical(record) in whole:
            found.append(f"a record it also returns for the other person: {_canonical(record)}")
            continue
        for name, value in fields(record):
            text = telling(value)
            if ident := _held(value, their_ids):
                found.append(f"{where(record, name)} = {text!r} holds the identifier {ident!r}")
            elif text is not None and text in their_values.get(name, ()):
                found.append(f"{where(record, name)} = {text!r} is a value of the other subject")
    return list(dict.fromkeys(found))


def _held(value: Any, identifiers: Mapping[str, str]) -> str | None:
    """The identifier ``value`` is, or contains (if the identifier is long enough to tell)."""
    text = str(value)
    for ident in identifiers.values():
        if telling(ident) and (text == ident or (len(ident) >= 5 and ident in text)):
            return ident
    return None


def left_behind(
    before: Sequence[Record],
    after: Sequence[Record],
    erased: Sequence[str],
    identifiers: Mapping[str, str],
) -> list[str]:
    """Values of the ``erased`` fields (every field if none) that ``after`` still holds."""
    old = values_by_field(before)
    checked = set(erased) or set(old)
    found = identifier_hits(after, identifiers)
    for record in after:
        for name, value in fields(record):
            text = telling(value)
            if name in checked and text is not None and text in old.get(name, ()):
                found.append(f"{where(record, name)} still holds {text!r}")
    return list(dict.fromkeys(found))


def same(a: Any, b: Any) -> bool:
    """Equal, or equal as text (``"1990-02-03"`` and a date the connector made JSON-ready)."""
    return bool(a == b or str(a) == str(b))


def snapshot(records: Iterable[Record]) -> list[str]:
    """Records in a form that compares equal whatever their order."""
    return sorted(_canonical(r) for r in records)


def difference(before: list[str], after: list[str], limit: int = 5) -> str:
    gone = [r for r in before if r not in after][:limit]
    new = [r for r in after if r not in before][:limit]
    lines = [f"    - {r}" for r in gone] + [f"    + {r}" for r in new]
    return "\n".join(lines) or "    (the same records, a different number of times)"


def _canonical(record: Record) -> str:
    return json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
