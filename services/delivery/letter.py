"""The written response: one self-contained, printable HTML letter.

A letter as it is posted in Japan: the date and request number, the addressee (the
principal's name when the request gives it), the business with its address and
contact window (``letterhead.py``), then the answer. Dates are in Japanese form in the
regulation's time zone (JST for the APPI). Systems, tables and fields are shown by their
display labels (``labels.py``), never by internal names. A table of up to
``GRID_COLUMNS`` columns is printed as a table; a wider one, and every provision or
receipt record (with the Art. 29/30 item names), as one block of label and value per
record, so no column is squeezed on A4. Every reason comes from the reason catalogue
(``services.rules.reasons``), in Japanese and English.

The HTML is rendered by Jinja2 with autoescape (``templates/letter.html.j2``): the data
comes from the principal and from internal systems; the style sheet is ``templates/letter.css``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jinja2

from services import rules, statements
from services.delivery.contents import Contents, Section, cell_text, columns
from services.delivery.letterhead import Letterhead
from services.provisions.labels import PRINCIPAL, RECORD_TABLES
from services.rules import reasons
from services.rules.sentence import Sentence
from services.templating import templates
from streams.records import PACKAGE_KINDS, Kind, RequestEvent

#: The most columns printed side by side; wider tables become per-record blocks.
GRID_COLUMNS = 4

OPENING = Sentence(
    "ご請求いただいた件について、次のとおり回答いたします。", "We answer your request as follows."
)

Row = list[tuple[str, str]]


HOLD_TITLE = Sentence("ご請求の手続きについて", "What we need to proceed with your request")
HOLD_OPENING = Sentence(
    "ご請求を受け付けましたが、次のものが揃うまで手続きを進めることができません。",
    "We have received your request, but cannot proceed with it until we have the following.",
)


def _templates() -> jinja2.Environment:
    return templates("services.delivery")


def render_letter(contents: Contents) -> str:
    """The whole letter as an HTML document."""
    return _templates().get_template("letter.html.j2").render(**view(contents))


def render_hold_letter(
    event: RequestEvent, reason_code: str, at: datetime, letterhead: Letterhead
) -> str:
    """The letter to a principal who asked for a written answer, while their request is
    held: what is needed (identity, the fee and its amount, an agent's authority)."""
    regulation = event.regulation.value
    policy = rules.policy_for(regulation)
    fee = event.fee.amount_jpy if reason_code == "fee_unpaid" else None
    paused = reason_code == "verification_pending" and policy.clock_pauses_for_verification
    return (
        _templates()
        .get_template("hold_letter.html.j2")
        .render(
            **_frame(event.request_id, regulation, HOLD_TITLE, at, event.subject.name, letterhead),
            opening=HOLD_OPENING,
            meta=[
                ("受付番号 / Request ID", event.request_id),
                ("適用法令 / Regulation", regulation.upper()),
                ("受付日時 / Received", str(statements.when(event.received_at, regulation))),
            ],
            needed=reasons.hold(reason_code),
            code=reason_code,
            fee=f"手数料 / Fee: {fee:,}円 (JPY)" if fee is not None else "",
            paused=reasons.PAUSED if paused else None,
        )
    )


def _frame(
    request_id: str,
    regulation: str,
    title: Sentence,
    dated: datetime,
    addressee: str | None,
    letterhead: Letterhead,
) -> dict[str, Any]:
    """What every letter has: the title, date, request number, addressee and sender."""
    return {
        "title": str(title),
        "heading": title,
        "request_id": f"受付番号 / Request {request_id}",
        "dated": statements.day(dated, regulation),
        "addressee": _addressee(addressee),
        "head": letterhead,
        "remedy": rules.policy_for(regulation).remedy,
    }


def view(contents: Contents) -> dict[str, Any]:
    """What the letter shows, as text: the template only lays it out."""
    r = contents.response
    regulation = r.regulation.value
    ja, en = contents.title
    labels = contents.labels
    return {
        **_frame(
            r.request_id,
            regulation,
            Sentence(ja, en),
            r.completed_at,
            contents.addressee,
            contents.letterhead,
        ),
        "opening": OPENING,
        "meta": [
            ("受付番号 / Request ID", r.request_id),
            ("適用法令 / Regulation", r.regulation.value.upper()),
            ("受付日時 / Received", str(statements.when(r.received_at, regulation))),
            ("回答日 / Answered", str(statements.day(r.completed_at, regulation))),
            ("回答期限 / Deadline", str(statements.day(r.deadline, regulation))),
            ("結果 / Outcome", str(statements.status_label(r.status))),
        ],
        "extensions": [
            [
                x.reason,
                str(statements.day(x.previous_deadline, regulation)),
                str(statements.day(x.deadline, regulation)),
            ]
            for x in r.extensions
        ],
        "nothing": statements.nothing_held(r),
        "outcomes": [
            [str(labels.system(s.system)), str(statements.system_statement(r.kind, s.outcome))]
            for s in contents.sections
        ],
        "reasons": [
            {"code": reason.code, "text": statements.reason(reason, r, labels.system)}
            for reason in r.reasons
        ],
        "data": _data(contents) if r.kind in PACKAGE_KINDS else None,
        "changes": _changes(contents) if r.kind is Kind.CORRECTION else None,
        "nothing_changed": str(statements.NOTHING_CHANGED),
        "fields": [
            [f.field, str(statements.field_statement(f, labels.system))] for f in r.corrections
        ],
        "purposes": [_purpose(p) for p in contents.purposes],
    }


def _addressee(name: str | None) -> Sentence:
    if name:
        return Sentence(f"{name} 様", f"Dear {name}")
    return Sentence("ご請求者 様", "Dear requester")


def _data(contents: Contents) -> dict[str, Any]:
    kind = contents.response.kind
    heading = (
        "第三者提供記録 / Third-party provision records"
        if kind is Kind.THIRD_PARTY_RECORDS
        else "保有個人データ / Your personal data"
    )
    return {"heading": heading, "systems": [_system(contents, s) for s in contents.sections]}


def _system(contents: Contents, section: Section) -> dict[str, Any]:
    labels = contents.labels
    said = ""
    if not section.tables:
        said = str(statements.system_statement(contents.response.kind, section.outcome))
    tables = []
    for table, rows in section.tables.items():
        keys = columns(rows)
        names = [str(labels.field(section.system, k, table)) for k in keys]
        entry: dict[str, Any] = {
            "label": str(labels.table(section.system, table)),
            "blocks": [],
            "header": [],
            "rows": [],
        }
        if table in RECORD_TABLES or len(keys) > GRID_COLUMNS:
            who = _principal(contents) if table in RECORD_TABLES else []
            entry["blocks"] = [
                who + [(n, cell_text(row.get(k))) for n, k in zip(names, keys, strict=True)]
                for row in rows
            ]
        else:
            entry["header"] = names
            entry["rows"] = [[cell_text(row.get(k)) for k in keys] for row in rows]
        tables.append(entry)
    return {"label": str(labels.system(section.system)), "said": said, "tables": tables}


def _principal(contents: Contents) -> Row:
    """The record's 本人の氏名等: the records name nobody, so the addressee stands in."""
    return [(str(PRINCIPAL), contents.addressee or "ご本人 / You")]


def _changes(contents: Contents) -> list[Row]:
    labels = contents.labels
    return [
        [
            ("システム / System", str(labels.system(s.system))),
            (
                "項目 / Field",
                str(labels.field(s.system, c.field, c.table)),
            ),
            ("訂正前 / Before", cell_text(c.old)),
            ("訂正後 / After", cell_text(c.new)),
        ]
        for s in contents.sections
        for c in s.changes
    ]


def _purpose(purpose: dict[str, Any]) -> str:
    return cell_text(purpose.get("description") or purpose.get("id") or purpose)
