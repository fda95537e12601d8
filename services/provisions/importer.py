"""``dsr provisions import``: provision records from a file, through the same validation
and store as the ``dsr.provisions`` topic.

JSON Lines: one provision event per line. CSV: one record per row, with dotted
headers for nested fields (``subject.identifiers.email``, ``counterparty.name``,
``cross_border.country``), ``items`` and ``subject.digests`` separated by ``;`` and
empty cells left out. Either form of subject is accepted; records go straight to the
ledger, which keeps only digests, and never onto a topic.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.parsing import Rejection, parse
from services.provisions.records import ProvisionEvent
from services.provisions.store import ProvisionStore

#: Headers whose cell is a list, separated by ``;``.
LIST_HEADERS = frozenset({"items", "subject.digests"})


@dataclass(frozen=True)
class Refused:
    """A line that was not imported, and why (never its content: it holds identifiers)."""

    line: int
    reason_code: str
    errors: list[dict[str, Any]]


@dataclass
class ImportReport:
    imported: int = 0
    duplicate: int = 0
    rejected: list[Refused] = field(default_factory=list)


def import_file(store: ProvisionStore, path: Path, fmt: str = "auto") -> ImportReport:
    """Validate and store every record of ``path`` (``jsonl``, ``csv``, or ``auto`` by suffix)."""
    text = path.read_text(encoding="utf-8-sig")
    csv_file = fmt == "csv" or (fmt == "auto" and path.suffix.lower() == ".csv")
    report = ImportReport()
    for line, raw in _csv_rows(text) if csv_file else _json_lines(text):
        try:
            event = parse(raw, None, None, ProvisionEvent)
        except Rejection as rej:
            report.rejected.append(Refused(line, rej.reason_code, rej.errors))
            continue
        outcome = store.record(event, via="import")
        if outcome.status == "recorded":
            report.imported += 1
        elif outcome.status == "duplicate":
            report.duplicate += 1
        else:
            code = outcome.reason_code or "rejected"
            report.rejected.append(Refused(line, code, [{"msg": outcome.message}]))
    return report


def _json_lines(text: str) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip().encode()


def _csv_rows(text: str) -> Iterator[tuple[int, bytes]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        yield reader.line_num, json.dumps(nest(row), ensure_ascii=False).encode()


def nest(row: dict[str, str | None]) -> dict[str, Any]:
    """A flat CSV row as the nested event: dotted headers become objects."""
    out: dict[str, Any] = {}
    for header, cell in row.items():
        if header is None or cell is None or cell.strip() == "":
            continue
        name = header.strip()
        *parents, leaf = name.split(".")
        value: Any = cell.strip()
        if name in LIST_HEADERS:
            value = [i.strip() for i in cell.split(";") if i.strip()]
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out
