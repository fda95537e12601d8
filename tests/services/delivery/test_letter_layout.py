"""The letter as printed: a third-party-records letter with wide records is laid out on
A4, and no table cell is narrower than a few characters.

The pages are laid out by WeasyPrint (the same layout the PDF is written from); each
table cell's width is read from that layout, and every page is saved as an image in
the test artifacts.
"""

from __future__ import annotations

from typing import Any

import pypdfium2
import pytest

from services.delivery.contents import collect
from services.delivery.labels import Labels
from services.delivery.letter import GRID_COLUMNS, render_letter
from services.delivery.letterhead import Letterhead
from services.delivery.pdf import layout
from services.provisions.labels import ITEM_LABELS, PRINCIPAL
from services.rules.sentence import Sentence
from streams.records import Kind, TaskStatus
from tests.services.delivery.fixtures import make_response, make_result
from tests.services.delivery.test_pdf import artifact

pytest.importorskip("weasyprint")

#: The narrowest a cell may be, in characters of the letter's body text.
MIN_CHARACTERS = 4

PROVISION = {
    "_source": "provisions",
    "record_id": "P-2026-0001",
    "provided_on": "2026-10-01",
    "last_provided_on": "2026-11-01",
    "recipient": "株式会社パートナーマーケティング",
    "recipient_address": "東京都港区芝公園4-2-8",
    "recipient_representative": "代表取締役 佐藤花子",
    "items": ["氏名", "メールアドレス", "購買履歴"],
    "basis": "consent",
    "consent": True,
    "cross_border_country": None,
    "cross_border_protection_system": None,
    "cross_border_recipient_measures": None,
    "record_form": "per_provision",
    "system": "partners",
    "recorded_at": "2026-10-01T09:00:00+00:00",
    "retain_until": "2029-10-01T09:00:00+00:00",
    "stopped": False,
}
WIDE = {"_source": "orders", **{f"column_{n}": f"value {n} " * 3 for n in range(12)}}


def letter_html() -> str:
    results = [
        make_result("register", Kind.THIRD_PARTY_RECORDS, records=[PROVISION, PROVISION]),
        make_result("orders", Kind.THIRD_PARTY_RECORDS, records=[WIDE]),
    ]
    response = make_response(
        Kind.THIRD_PARTY_RECORDS,
        systems={"register": TaskStatus.OK, "orders": TaskStatus.OK},
        results=results,
    )
    labels = Labels(
        {"register": Sentence("第三者提供記録簿", "Register of provision records")},
        {"register": {f"provisions.{k}": v for k, v in ITEM_LABELS["provisions"].items()}},
    )
    head = Letterhead(
        business=Sentence("株式会社サンプル", "Sample K.K."),
        complaints=Sentence("お問い合わせ窓口", "Enquiries desk"),
    )
    contents = collect(response, results, None, head, labels, "山田 太郎")
    return render_letter(contents)


def cells(box: Any) -> list[Any]:
    found = []
    for child in getattr(box, "children", []) or []:
        if type(child).__name__ == "TableCellBox":
            found.append(child)
        found += cells(child)
    return found


def test_wide_records_become_labelled_blocks_and_no_cell_is_squeezed() -> None:
    html = letter_html()
    # the Art. 29 items by their names, with the principal, one block per record
    for item in ("提供年月日", "第三者の氏名又は名称", "第三者の住所", "第三者の代表者の氏名"):
        assert html.count(f'<th scope="row">{item} / ') == 2, item
    assert html.count(f'<th scope="row">{PRINCIPAL}</th><td>山田 太郎</td>') == 2
    assert html.count("個人データの項目 / Items of personal data") == 2
    assert html.count("本人の同意の有無 / Whether you consented") == 2
    # a table wider than GRID_COLUMNS: one block per record, not 12 columns
    assert len(WIDE) - 1 > GRID_COLUMNS and "<thead><tr><th>column_0" not in html

    document = layout(html)
    narrowest = []
    for page in document.pages:
        for cell in cells(page._page_box):
            size = cell.style["font_size"]
            narrowest.append(cell.width / size)
    assert narrowest, "the letter has tables"
    assert min(narrowest) >= MIN_CHARACTERS, f"a cell is {min(narrowest):.1f} characters wide"

    pdf = document.write_pdf()
    pages = pypdfium2.PdfDocument(pdf)
    try:
        for n in range(len(pages)):
            path = artifact(f"third-party-records-page{n + 1}.png")
            pages[n].render(scale=1.25).to_pil().save(path)
            assert path.read_bytes().startswith(b"\x89PNG")
    finally:
        pages.close()
