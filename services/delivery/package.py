"""Build the response a principal receives, and store it under ``responses/{request_id}/``.

``electronic`` (a machine-readable package)::

    data.json               request, status, per-system outcomes, records grouped by table
    {system}/{table}.csv    one CSV per system and source table, UTF-8 with a BOM
    summary.txt             a short human summary; "no data found" is an outcome too
    manifest.json           every file's size and SHA-256

``written`` (a printable letter listing the same data)::

    letter.html             self-contained HTML, see ``letter.py``
    letter.pdf              the same letter as an A4 PDF with its font embedded, see ``pdf.py``
    manifest.json

The prefix is cleared first and ``manifest.json`` is written last, so a prefix
without a manifest is an incomplete package. The same inputs give the same
bytes: nothing is stamped except the times already in the response (the PDF's
dates are ``completed_at``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services import statements
from services.delivery.contents import (
    Contents,
    Section,
    cell_text,
    collect,
    columns,
    safe_name,
)
from services.delivery.labels import Labels
from services.delivery.letter import render_hold_letter, render_letter
from services.delivery.letterhead import Letterhead
from services.delivery.pdf import render_pdf
from services.delivery.storage import Storage
from streams.records import PACKAGE_KINDS, Kind, RequestEvent, ResponseEvent, TaskResult

DeliveryMethod = Literal["electronic", "written"]

PACKAGE_FORMAT = "dsr-response-package/1"
MANIFEST = "manifest.json"
CONTENT_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".pdf": "application/pdf",
}
_TOP_LEVEL = {"data.json", "summary.txt", MANIFEST, "letter.html", "letter.pdf"}


@dataclass(frozen=True)
class PackageInfo:
    """Where a stored package is, and the SHA-256 of each of its files."""

    uri: str
    prefix_uri: str
    files: dict[str, str]


def package_prefix(request_id: str) -> str:
    return f"responses/{request_id}/"


def read_package(storage: Storage, request_id: str) -> dict[str, bytes]:
    """Every file of a stored package by name, ``manifest.json`` included, each checked
    against the manifest's SHA-256 (``ValueError`` if one differs)."""
    prefix = package_prefix(request_id)
    raw = storage.get(prefix + MANIFEST)
    files = {MANIFEST: raw}
    for entry in json.loads(raw)["files"]:
        name = entry["name"]
        data = storage.get(prefix + name)
        if sha256(data) != entry["sha256"]:
            raise ValueError(f"{prefix}{name} does not match its SHA-256 in the manifest")
        files[name] = data
    return files


def build_package(
    storage: Storage,
    *,
    response: ResponseEvent,
    results: list[TaskResult],
    method: DeliveryMethod,
    purposes: list[dict[str, Any]] | None = None,
    letterhead: Letterhead | None = None,
    labels: Labels | None = None,
    addressee: str | None = None,
) -> PackageInfo:
    """Render the response as a package (electronic) or a letter (written) and store it.

    ``purposes`` defaults to ``response.purposes``; ``letterhead`` says who writes and
    whom the principal complains to; ``labels`` name systems and fields; ``addressee``
    is the principal's name. Building twice with the same inputs overwrites the package
    with identical bytes.
    """
    contents = collect(response, results, purposes, letterhead, labels, addressee)
    if method == "electronic":
        files, main = electronic_files(contents), "data.json"
    elif method == "written":
        files, main = letter_files(contents), "letter.html"
    else:
        raise ValueError(f"unknown delivery method {method!r}: use 'electronic' or 'written'")
    files[MANIFEST] = manifest(response.request_id, files)

    prefix = package_prefix(response.request_id)
    storage.delete_prefix(prefix)
    uris = {}
    for name in sorted(files, key=lambda n: (n == MANIFEST, n)):
        suffix = name[name.rfind(".") :]
        uris[name] = storage.put(prefix + name, files[name], CONTENT_TYPES[suffix])
    return PackageInfo(
        uri=uris[main],
        prefix_uri=storage.uri(prefix.rstrip("/")) + "/",
        files={name: sha256(files[name]) for name in sorted(files)},
    )


def hold_letter_prefix(request_id: str, revision: int) -> str:
    """Where a hold letter goes: in the request's package prefix (sealed under its key),
    which the response's package replaces once the request is answered."""
    return f"{package_prefix(request_id)}hold-{revision}/"


def build_hold_letter(
    storage: Storage,
    event: RequestEvent,
    reason_code: str,
    revision: int,
    at: datetime,
    letterhead: Letterhead,
) -> str:
    """The letter telling a principal who asked for a written answer what their held
    request needs, stored as ``letter.html`` and ``letter.pdf`` under
    ``hold_letter_prefix``; the PDF's URI."""
    html = render_hold_letter(event, reason_code, at, letterhead)
    prefix = hold_letter_prefix(event.request_id, revision)
    storage.put(prefix + "letter.html", html.encode(), CONTENT_TYPES[".html"])
    return storage.put(prefix + "letter.pdf", render_pdf(html, dated=at), CONTENT_TYPES[".pdf"])


def letter_files(contents: Contents) -> dict[str, bytes]:
    """letter.html and the same letter as letter.pdf, by file name."""
    letter = render_letter(contents)
    return {
        "letter.html": letter.encode(),
        "letter.pdf": render_pdf(letter, dated=contents.response.completed_at),
    }


def electronic_files(contents: Contents) -> dict[str, bytes]:
    """data.json, the CSVs and summary.txt, by file name."""
    files: dict[str, bytes] = {}
    csv_names: dict[str, dict[str, str]] = {}
    folders = {name.casefold() for name in _TOP_LEVEL}
    for section in contents.sections:
        if not section.tables:
            continue
        folder = safe_name(section.system, folders)
        taken: set[str] = set()
        names = csv_names[section.system] = {}
        for table, rows in section.tables.items():
            name = f"{folder}/{safe_name(table, taken)}.csv"
            names[table] = name
            files[name] = to_csv(rows)
    files["data.json"] = _json(data_document(contents, csv_names))
    files["summary.txt"] = summary(contents).encode()
    return files


def data_document(contents: Contents, csv_names: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The machine-readable content of data.json."""
    r = contents.response
    return {
        "format": PACKAGE_FORMAT,
        "request_id": r.request_id,
        "kind": r.kind.value,
        "regulation": r.regulation.value,
        "status": r.status.value,
        "received_at": r.received_at.isoformat(),
        "completed_at": r.completed_at.isoformat(),
        "deadline": r.deadline.isoformat(),
        "extensions": [x.model_dump(mode="json") for x in r.extensions],
        "data_found": statements.nothing_held(r) is None,
        "reasons": [reason.model_dump(mode="json") for reason in r.reasons],
        "systems": [
            _system_document(s, r.kind, csv_names.get(s.system, {})) for s in contents.sections
        ],
        **(
            {"corrections": [f.model_dump(mode="json") for f in r.corrections]}
            if r.kind is Kind.CORRECTION
            else {}
        ),
        "purposes": contents.purposes,
    }


def _system_document(section: Section, kind: Kind, files: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "system": section.system,
        "status": section.outcome.status.value,
        "outcome": section.outcome.outcome.value,
        "reason_code": section.outcome.reason_code,
    }
    if kind in PACKAGE_KINDS:
        doc["records"] = section.record_count
        doc["tables"] = section.tables
        doc["files"] = files
    elif kind is Kind.CORRECTION:
        doc["changes"] = [c.model_dump(mode="json", exclude_none=True) for c in section.changes]
        doc["not_found"] = section.not_found
    else:
        outcome = section.outcome
        doc["changed"] = outcome.changed
        doc |= {"kept": outcome.kept} if outcome.kept else {}
        doc |= {"pending_purge": outcome.pending_purge} if outcome.pending_purge else {}
        doc["fields"] = outcome.fields
    return doc


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    """Rows as CSV: header = union of the columns in first-seen order, CRLF line ends."""
    header = columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell_text(row.get(col)) for col in header])
    return out.getvalue().encode("utf-8-sig")


def summary(contents: Contents) -> str:
    """A short plain-text summary for a person."""
    r = contents.response
    ja, en = contents.title
    labels, regulation = contents.labels, r.regulation.value
    head = contents.letterhead
    lines = [
        f"{ja} / {en}",
        str(head.business),
        "",
        f"Request / 受付番号:   {r.request_id}",
        f"Regulation / 法令:    {r.regulation.value.upper()}",
        f"Outcome / 結果:       {statements.status_label(r.status)}",
        f"Received / 受付日時:  {statements.when(r.received_at, regulation)}",
        f"Deadline / 回答期限:  {statements.day(r.deadline, regulation)}",
        *(
            f"Extended / 延長:      {statements.day(x.previous_deadline, regulation)} -> "
            f"{statements.day(x.deadline, regulation)}: {x.reason}"
            for x in r.extensions
        ),
        "",
    ]
    if nothing := statements.nothing_held(r):
        lines += [str(nothing), ""]
    if contents.sections:
        lines.append("Per system / システム別:")
        for section in contents.sections:
            said = statements.system_statement(r.kind, section.outcome)
            lines.append(f"- {labels.system(section.system)}: {said}")
            for table, rows in section.tables.items():
                lines.append(f"    {labels.table(section.system, table)}: {len(rows)}")
            for change in section.changes:
                old, new = _quote(change.old), _quote(change.new)
                where = labels.field(section.system, change.field, change.table)
                lines.append(f"    {where}: {old} -> {new}")
        lines.append("")
    if r.corrections:
        lines.append("Per field / 項目別:")
        lines += [
            f"- {f.field}: {statements.field_statement(f, labels.system)}" for f in r.corrections
        ]
        lines.append("")
    if contents.purposes:
        lines.append("Purposes of use / 利用目的:")
        for purpose in contents.purposes:
            lines.append(f"- {_purpose_line(purpose)}")
        lines.append("")
    if r.reasons:
        lines.append("Reasons / 理由:")
        for reason in r.reasons:
            lines.append(f"- [{reason.code}] {statements.reason(reason, r, labels.system)}")
        lines.append("")
    lines += ["Complaints / 苦情・お問い合わせ:", str(head.complaints), ""]
    return "\n".join(lines)


def _quote(value: Any) -> str:
    return json.dumps(cell_text(value), ensure_ascii=False)


def _purpose_line(purpose: dict[str, Any]) -> str:
    head = cell_text(purpose.get("id", ""))
    text = cell_text(purpose.get("description", ""))
    if head or text:
        return f"{head}: {text}" if head and text else head or text
    return cell_text(purpose)


def manifest(request_id: str, files: dict[str, bytes]) -> bytes:
    """manifest.json: each file's size and SHA-256, and a SHA-256 over that list."""
    listing = [
        {"name": name, "size": len(files[name]), "sha256": sha256(files[name])}
        for name in sorted(files)
    ]
    return _json(
        {
            "format": PACKAGE_FORMAT,
            "request_id": request_id,
            "files": listing,
            "files_sha256": sha256(canonical(listing)),
        }
    )


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n").encode()
