"""What connector operations return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Withheld:
    """Part or all of what was asked is withheld, on a ground the principal is told.

    ``code`` is machine-readable (e.g. ``violation_of_other_laws`` for APPI Art.
    33(2)(iii)); ``reason`` is the sentence the principal reads.
    """

    code: str
    reason: str


@dataclass(frozen=True)
class OperationResult:
    """What an operation found or changed.

    ``records`` are JSON-ready dicts of column to value, each with a ``_source``
    key naming the table or object it came from. ``details`` is per operation,
    e.g. a correction's ``{"changes": [{"table", "field", "old", "new"}],
    "not_found": [field, ...]}``.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    changed: int = 0
    fields: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    discovered_identifiers: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False
    #: Set when the records (or changes) are not all that was asked: a partial refusal.
    withheld: Withheld | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
