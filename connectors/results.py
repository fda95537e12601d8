"""What connector operations return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
