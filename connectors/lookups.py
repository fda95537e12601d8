"""The identity units one task is called with, and one result from several calls.

A task carries the units of the request's identity graph that supply one of its
system's keys: the request's own identifiers first, then those the resolve phase
found, each a whole unit (identifiers that belong together). The connector is
called once per unit, never with parts of two units combined, and the results
are merged.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from connectors.errors import FatalError
from connectors.results import OperationResult
from streams.records import CorrectionReport, Task, merge_units

#: A task with more identity units than this is refused.
MAX_LOOKUPS = 64


def lookups(task: Task) -> list[dict[str, str]]:
    """The identity units to call the connector with, each once, in the task's order;
    the request's identifiers when the task carries no units."""
    units = merge_units([], task.identities or [task.identifiers])
    if len(units) > MAX_LOOKUPS:
        raise FatalError(f"over {MAX_LOOKUPS} identity units to look up in one system")
    return units


def merge(results: Sequence[OperationResult]) -> OperationResult:
    """One result from several lookups of the same subject."""
    if len(results) == 1:
        return results[0]
    details: dict[str, Any] = {}
    for r in results:
        for key, value in r.details.items():
            if isinstance(value, list):
                details.setdefault(key, []).extend(v for v in value if v not in details[key])
            else:
                details.setdefault(key, value)
    records = [rec for r in results for rec in r.records]
    unique = list({json.dumps(rec, sort_keys=True, default=str): rec for rec in records}.values())
    return OperationResult(
        records=unique,
        changed=sum(r.changed for r in results),
        fields=sorted({f for r in results for f in r.fields}),
        details=details,
        correction=_merged([r.correction for r in results]),
        identities=merge_units([], (u for r in results for u in r.units())),
        dry_run=any(r.dry_run for r in results),
        withheld=next((r.withheld for r in results if r.withheld), None),
    )


def _merged(reports: Sequence[CorrectionReport | None]) -> CorrectionReport | None:
    present = [r for r in reports if r is not None]
    return functools.reduce(CorrectionReport.merge, present) if present else None
