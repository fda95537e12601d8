"""What a response tells the principal, per system, before it is rendered.

``collect()`` joins a ``ResponseEvent`` with its ``TaskResult``s into one
``Section`` per system. The electronic package (``package.py``) and the
written letter (``letter.py``) render the same sections, so both list the
same data. Ordering is deterministic: systems by name, a system's results
by wave, tables and columns in first-seen order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from services.delivery.labels import Labels
from services.delivery.letterhead import Letterhead
from services.responses import TaskOutcome, system_outcome
from services.settings import DEFAULT_COMPLAINTS_CONTACT
from streams.records import (
    FieldChange,
    Kind,
    ResponseEvent,
    SystemOutcome,
    TaskResult,
    TaskStatus,
)

#: The table name for records that carry no ``_source`` key.
DEFAULT_TABLE = "records"

TITLES: dict[Kind, tuple[str, str]] = {
    Kind.PURPOSE_NOTIFICATION: ("利用目的の通知", "Notice of the purposes of use"),
    Kind.DISCLOSURE: ("開示請求に対する回答", "Response to your disclosure request"),
    Kind.THIRD_PARTY_RECORDS: (
        "第三者提供記録の開示請求に対する回答",
        "Response to your request for third-party provision records",
    ),
    Kind.CORRECTION: ("訂正等請求に対する回答", "Response to your correction request"),
    Kind.SUSPENSION: ("利用停止請求に対する回答", "Response to your request to stop use"),
    Kind.ERASURE: ("消去請求に対する回答", "Response to your erasure request"),
    Kind.THIRD_PARTY_STOP: (
        "第三者提供停止請求に対する回答",
        "Response to your request to stop provision to third parties",
    ),
}


@dataclass(frozen=True)
class Section:
    """One system's part of the response: its outcome as the response records it, and
    the data its results carry. What is said about it comes from ``services.statements``."""

    outcome: SystemOutcome
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changes: list[FieldChange] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    @property
    def system(self) -> str:
        return self.outcome.system

    @property
    def record_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


@dataclass(frozen=True)
class Contents:
    """Everything a package or letter shows."""

    response: ResponseEvent
    sections: list[Section]
    purposes: list[dict[str, Any]]
    #: Who writes, and whom the principal contacts with a complaint.
    letterhead: Letterhead = field(
        default_factory=lambda: Letterhead.default(DEFAULT_COMPLAINTS_CONTACT)
    )
    #: What systems and fields are called in front of the principal.
    labels: Labels = field(default_factory=Labels)
    #: The principal's name (``subject.name``), when the request gave it.
    addressee: str | None = None

    @property
    def title(self) -> tuple[str, str]:
        return TITLES[self.response.kind]


def collect(
    response: ResponseEvent,
    results: list[TaskResult],
    purposes: list[dict[str, Any]] | None,
    letterhead: Letterhead | None = None,
    labels: Labels | None = None,
    addressee: str | None = None,
) -> Contents:
    """Join a response with its task results, one section per system."""
    for result in results:
        if result.request_id != response.request_id:
            raise ValueError(
                f"task result {result.task_id!r} belongs to request {result.request_id!r}, "
                f"not {response.request_id!r}"
            )
        if result.kind != response.kind:
            raise ValueError(
                f"task result {result.task_id!r} is a {result.kind} result, "
                f"but the response is for {response.kind}"
            )
    by_system: dict[str, list[TaskResult]] = {}
    for result in _latest_per_task(results):
        by_system.setdefault(result.system, []).append(result)
    outcomes = {o.system: o for o in response.systems}
    sections = []
    for system in sorted(outcomes.keys() | by_system.keys()):
        mine = sorted(by_system.get(system, []), key=lambda r: (_wave(r.task_id), r.task_id))
        done = [r for r in mine if r.status == "ok"]
        outcome = outcomes.get(system) or _outcome_of(response.kind, system, mine)
        sections.append(
            Section(
                outcome=outcome,
                tables=_tables(done),
                changes=[c for r in done if r.correction for c in r.correction.changes],
                not_found=[f for r in done if r.correction for f in r.correction.not_found],
            )
        )
    chosen = purposes if purposes is not None else (response.purposes or [])
    return Contents(
        response=response,
        sections=sections,
        purposes=list(chosen),
        letterhead=letterhead or Letterhead.default(DEFAULT_COMPLAINTS_CONTACT),
        labels=labels or Labels(),
        addressee=addressee,
    )


def _outcome_of(kind: Kind, system: str, results: list[TaskResult]) -> SystemOutcome:
    """The outcome of a system the response does not list, from its latest result."""
    last = results[-1]
    status = TaskStatus.OK if last.status == "ok" else TaskStatus.FAILED
    return system_outcome(kind, TaskOutcome(system, status, last.error, last))


def _latest_per_task(results: list[TaskResult]) -> list[TaskResult]:
    latest: dict[str, TaskResult] = {}
    for result in results:
        seen = latest.get(result.task_id)
        if seen is None or result.finished_at >= seen.finished_at:
            latest[result.task_id] = result
    return list(latest.values())


def _wave(task_id: str) -> int:
    tail = task_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _tables(results: list[TaskResult]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        for record in result.records:
            source = record.get("_source")
            table = DEFAULT_TABLE if source is None or source == "" else str(source)
            row = {k: v for k, v in record.items() if k != "_source"}
            tables.setdefault(table, []).append(row)
    return tables


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The union of the rows' keys, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def cell_text(value: Any) -> str:
    """One value as text for a CSV cell or a letter: '' for None, JSON for nested values."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


_UNSAFE = re.compile(r"[^\w.\-]+")


def safe_name(name: str, taken: set[str]) -> str:
    """A file or folder name for ``name``, safe as a storage key and unused in ``taken``.

    ``taken`` holds case-folded names, so two names never clash on a
    case-insensitive file system either.
    """
    base = _UNSAFE.sub("_", name).lstrip(".")[:100] or "_"
    candidate, n = base, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate.casefold())
    return candidate
