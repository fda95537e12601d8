"""The written response: one self-contained, printable HTML letter.

Headings are Japanese and English side by side. The letter lists the same data
as the electronic package: per-system outcomes, the records as tables, the
corrections made and each field's outcome, the purposes of use, and the reason
for every refusal or partial outcome (APPI Art. 36). Every value is
HTML-escaped, because the data comes from the principal and from internal
systems. The CSS is inline and print-friendly (A4, repeated table headers).
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from services import rules, statements
from services.delivery.contents import Contents, cell_text, columns
from streams.records import PACKAGE_KINDS, Kind

STYLE = """
body { font-family: "Hiragino Sans", "Noto Sans JP", "Yu Gothic", sans-serif;
       font-size: 11pt; line-height: 1.5; color: #111; max-width: 60rem; margin: 2rem auto; }
h1 { font-size: 16pt; border-bottom: 2px solid #111; padding-bottom: .3rem; }
h2 { font-size: 13pt; margin-top: 1.6rem; border-bottom: 1px solid #999; }
h3 { font-size: 12pt; margin-bottom: .3rem; }
h4 { font-size: 11pt; margin: .8rem 0 .2rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 1rem; font-size: 10pt; }
th, td { border: 1px solid #999; padding: .2rem .4rem; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #eee; }
table.meta th { width: 14rem; }
.note { font-weight: bold; }
@page { size: A4; margin: 18mm; }
@media print {
  body { margin: 0; max-width: none; }
  h2, h3, h4 { break-after: avoid; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  th { background: none; }
}
""".strip()


def e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(cell_text(value), quote=True)


def render_letter(contents: Contents) -> str:
    """The whole letter as an HTML document."""
    r = contents.response
    ja, en = contents.title
    title = f"{ja} / {en}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ja">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>\n{STYLE}\n</style>",
        "</head>",
        "<body>",
        f'<h1><span lang="ja">{e(ja)}</span> / <span lang="en">{e(en)}</span></h1>',
        _facts(
            [
                ("受付番号 / Request ID", r.request_id),
                ("適用法令 / Regulation", r.regulation.value.upper()),
                ("受付日時 / Received", _when(r.received_at)),
                ("回答日時 / Answered", _when(r.completed_at)),
                ("回答期限 / Deadline", _when(r.deadline)),
                ("結果 / Outcome", str(statements.status_label(r.status))),
            ]
        ),
    ]
    if r.extensions:
        parts.append("<h2>回答期限の延長 / Extension of the deadline</h2>")
        parts.append(
            _table(
                ["理由 / Reason", "当初の期限 / Was due", "延長後の期限 / Now due"],
                [[x.reason, _when(x.previous_deadline), _when(x.deadline)] for x in r.extensions],
            )
        )
    if nothing := statements.nothing_held(r):
        parts.append(f'<p class="note">{e(nothing)}</p>')
    if contents.sections:
        parts.append("<h2>システム別の結果 / Outcome per system</h2>")
        parts.append(
            _table(
                ["システム / System", "結果 / Outcome"],
                [
                    [s.system, statements.system_statement(r.kind, s.outcome)]
                    for s in contents.sections
                ],
            )
        )
    if r.reasons:
        parts.append("<h2>理由 / Reasons</h2>")
        parts.append(
            _table(
                ["コード / Code", "システム / System", "説明 / Explanation"],
                [[reason.code, reason.system or "", reason.message] for reason in r.reasons],
            )
        )
    if r.kind in PACKAGE_KINDS:
        parts += _data_sections(contents)
    if r.kind is Kind.CORRECTION:
        parts += _correction_sections(contents)
    if contents.purposes:
        parts.append("<h2>利用目的 / Purposes of use</h2>")
        keys = columns(contents.purposes)
        parts.append(_table(keys, [[p.get(k) for k in keys] for p in contents.purposes]))
    parts.append("<h2>苦情・お問い合わせ / Complaints and questions</h2>")
    parts.append(f"<p>{e(contents.contact)}</p>")
    if remedy := rules.policy_for(r.regulation).remedy:
        parts.append(f"<p>{e(remedy)}</p>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _data_sections(contents: Contents) -> list[str]:
    heading = (
        "第三者提供記録 / Third-party provision records"
        if contents.response.kind is Kind.THIRD_PARTY_RECORDS
        else "保有個人データ / Your personal data"
    )
    parts = [f"<h2>{e(heading)}</h2>"]
    for section in contents.sections:
        parts.append(f"<h3>{e(section.system)}</h3>")
        if not section.tables:
            said = statements.system_statement(contents.response.kind, section.outcome)
            parts.append(f"<p>{e(said)}</p>")
        for table, rows in section.tables.items():
            keys = columns(rows)
            parts.append(f"<h4>{e(table)}</h4>")
            parts.append(_table(keys, [[row.get(k) for k in keys] for row in rows]))
    return parts


def _correction_sections(contents: Contents) -> list[str]:
    changes = [
        [s.system, c.get("table"), c.get("field"), c.get("old"), c.get("new")]
        for s in contents.sections
        for c in s.changes
    ]
    parts = ["<h2>訂正内容 / Changes made</h2>"]
    if changes:
        head = [
            "システム / System",
            "表 / Table",
            "項目 / Field",
            "訂正前 / Before",
            "訂正後 / After",
        ]
        parts.append(_table(head, changes))
    else:
        parts.append(f"<p>{e(statements.NOTHING_CHANGED)}</p>")
    fields = contents.response.corrections
    if fields:
        parts.append("<h2>項目ごとの結果 / Outcome per field</h2>")
        parts.append(
            _table(
                ["項目 / Field", "結果 / Outcome"],
                [[f.field, statements.field_statement(f)] for f in fields],
            )
        )
    return parts


def _facts(rows: list[tuple[str, str]]) -> str:
    body = "\n".join(f'<tr><th scope="row">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in rows)
    return f'<table class="meta">\n<tbody>\n{body}\n</tbody>\n</table>'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _when(value: datetime) -> str:
    offset = value.strftime("%z")
    zone = f" (UTC{offset[:3]}:{offset[3:]})" if offset else ""
    return value.strftime("%Y-%m-%d %H:%M") + zone
