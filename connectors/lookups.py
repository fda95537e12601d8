"""Identifier sets for one task, and one result from several lookups.

A connector takes one value per identifier. Earlier waves may discover several
(a customer's three order ids), so a task becomes one call per combination and
the results are merged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from connectors.errors import FatalError
from connectors.results import OperationResult
from streams.records import Task

#: A request whose discovered identifiers expand to more calls than this is refused.
MAX_LOOKUPS = 64


def lookups(task: Task) -> list[dict[str, str]]:
    """The identifier sets to call the connector with: the request's own identifiers,
    plus one value of each identifier discovered by earlier waves (one call per
    combination, since a connector takes one value per identifier)."""
    base = dict(task.identifiers)
    extra = {k: v for k, v in task.discovered.items() if v and k not in base}
    calls = [base]
    for name, values in sorted(extra.items()):
        calls = [{**call, name: value} for call in calls for value in values]
        if len(calls) > MAX_LOOKUPS:
            raise FatalError(
                f"discovered identifiers expand to over {MAX_LOOKUPS} lookups for one system"
            )
    return calls


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
    discovered: dict[str, list[str]] = {}
    for r in results:
        for name, values in r.discovered_identifiers.items():
            have = discovered.setdefault(name, [])
            have.extend(v for v in values if v not in have)
    records = [rec for r in results for rec in r.records]
    unique = list({json.dumps(rec, sort_keys=True, default=str): rec for rec in records}.values())
    return OperationResult(
        records=unique,
        changed=sum(r.changed for r in results),
        fields=sorted({f for r in results for f in r.fields}),
        details=details,
        discovered_identifiers=discovered,
        dry_run=any(r.dry_run for r in results),
        withheld=next((r.withheld for r in results if r.withheld), None),
    )
