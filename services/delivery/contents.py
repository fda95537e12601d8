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

from services.settings import DEFAULT_COMPLAINTS_CONTACT
from streams.records import (
    HOLDS_DATA,
    Kind,
    ResponseEvent,
    ResponseStatus,
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

STATUS_LABELS: dict[ResponseStatus, str] = {
    ResponseStatus.COMPLETED: "全部対応 / Completed in full",
    ResponseStatus.PARTIALLY_COMPLETED: "一部対応 / Completed in part",
    ResponseStatus.REFUSED: "対応不可 / Refused",
}

NO_DATA = "該当するデータはありません / No data found"
NO_DATA_ANYWHERE = (
    "お客様に関する保有個人データは存在しませんでした。 / "
    "We hold no personal data about you in any of our systems."
)


@dataclass(frozen=True)
class Section:
    """One system's part of the response."""

    system: str
    status: TaskStatus
    changed: int = 0
    fields: list[str] = field(default_factory=list)
    reason_code: str | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    #: For a purpose notification: whether the system holds the principal's data.
    holds_data: bool = False

    @property
    def record_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())

    def outcome(self, kind: Kind) -> str:
        """A short bilingual line saying what was found or done."""
        if self.status is TaskStatus.OK:
            text = _ok_outcome(self, kind)
        else:
            text = {
                TaskStatus.NOT_APPLICABLE: "対象外 / Not applicable",
                TaskStatus.REFUSED: "対応不可 / Withheld",
                TaskStatus.FAILED: "処理できませんでした / Could not be processed",
                TaskStatus.TIMED_OUT: "期限内に応答がありませんでした / No reply in time",
                TaskStatus.PENDING: "処理中 / Still in progress",
            }[self.status]
        return f"{text} [{self.reason_code}]" if self.reason_code else text


def _ok_outcome(section: Section, kind: Kind) -> str:
    if kind is Kind.CORRECTION:
        done = f"{len(section.changes)}項目を訂正 / {len(section.changes)} field(s) corrected"
        if section.not_found:
            missing = len(section.not_found)
            done += f"; {missing}項目は見つかりません / {missing} field(s) not found"
        return done if section.changes or section.not_found else NO_DATA
    if kind in (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS):
        n, t = section.record_count, len(section.tables)
        return f"{n}件 ({t}表) / {n} record(s) in {t} table(s)" if n else NO_DATA
    if kind is Kind.PURPOSE_NOTIFICATION:
        return "保有しています / Holds your data" if section.holds_data else NO_DATA
    n = section.changed
    return f"{n}件に対応 / {n} record(s) handled" if n else NO_DATA


@dataclass(frozen=True)
class Contents:
    """Everything a package or letter shows."""

    response: ResponseEvent
    sections: list[Section]
    purposes: list[dict[str, Any]]
    #: Whom the principal contacts with a complaint (``DSR_COMPLAINTS_CONTACT``).
    contact: str = DEFAULT_COMPLAINTS_CONTACT

    @property
    def title(self) -> tuple[str, str]:
        return TITLES[self.response.kind]

    @property
    def found_nothing(self) -> bool:
        """True when every system answered and none holds data ("no data" is an outcome)."""
        answered = [s for s in self.sections if s.status is TaskStatus.OK]
        return bool(answered) and all(
            not s.tables and not s.changes and not s.changed and not s.holds_data for s in answered
        )


def collect(
    response: ResponseEvent,
    results: list[TaskResult],
    purposes: list[dict[str, Any]] | None,
    contact: str = DEFAULT_COMPLAINTS_CONTACT,
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
        outcome = outcomes.get(system)
        if outcome is not None:
            status, changed, fields = outcome.status, outcome.changed, list(outcome.fields)
            reason_code = outcome.reason_code
        else:
            ok = any(r.status == "ok" for r in mine)
            status = TaskStatus.OK if ok else TaskStatus.FAILED
            changed, fields, reason_code = sum(r.changed for r in mine), [], None
        done = [r for r in mine if r.status == "ok"]
        sections.append(
            Section(
                system=system,
                status=status,
                changed=changed,
                fields=fields,
                reason_code=reason_code,
                tables=_tables(done),
                changes=[c for r in done for c in _list(r.details.get("changes"))],
                not_found=[_field_name(f) for r in done for f in _list(r.details.get("not_found"))],
                holds_data=any(r.details.get(HOLDS_DATA) for r in done),
            )
        )
    chosen = purposes if purposes is not None else (response.purposes or [])
    return Contents(response=response, sections=sections, purposes=list(chosen), contact=contact)


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


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _field_name(item: Any) -> str:
    if isinstance(item, dict):
        name = cell_text(item.get("field"))
        return f"{item['table']}.{name}" if item.get("table") else name
    return cell_text(item)


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
