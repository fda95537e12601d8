"""The written letter as PDF: its text, its Japanese glyphs, its bytes, and a picture of page 1.

Page 1 is saved as PNG under ``$DSR_TEST_ARTIFACTS`` (default ``tests/artifacts``, beside the
dashboard's screenshot).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import random
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from services.delivery.labels import Labels
from services.delivery.letterhead import Letterhead
from services.delivery.package import build_package
from services.delivery.pdf import bundled_font, render_pdf
from services.delivery.storage import LocalStorage
from services.rules import appi
from services.rules.sentence import Sentence
from streams.records import Kind, Reason, ResponseStatus, TaskStatus
from tests.services.delivery.fixtures import COMPLETED, make_response, make_result

PREFIX = "responses/req-1/"
ROOT = Path(__file__).resolve().parents[3]

CRM = [
    {
        "_source": "customers",
        "name": "山田太郎",
        "kana": "ヤマダ タロウ",
        "email": "taro@example.jp",
        "address": "東京都千代田区丸の内1-1",
    },
    {"_source": "orders", "order_id": "A-1", "item": "緑茶 / Green tea", "total": 1200.5},
]
REFUSED_JA = "面談記録の開示は業務の適正な実施に著しい支障を及ぼすおそれがあります。"
REFUSED = "Disclosing interview notes would seriously interfere with our business."
UNAVAILABLE = "The archive is offline."


def written_disclosure() -> dict[str, Any]:
    """A partial disclosure: Japanese and English data, one refusal, one failed system,
    on a business's letterhead, to a named principal, with the systems labelled."""
    results = [
        make_result("crm", records=CRM),
        make_result("hr"),
        make_result("legacy", status="failed"),
    ]
    return {
        "letterhead": Letterhead(
            business=Sentence("株式会社サンプル商事", "Sample Trading K.K."),
            address=Sentence(
                "〒100-0001 東京都千代田区千代田1-1", "1-1 Chiyoda, Chiyoda-ku, Tokyo 100-0001"
            ),
            contact=Sentence(
                "個人情報お問い合わせ窓口　03-0000-0000（平日9時～17時）",
                "Personal information enquiries: +81 3-0000-0000 (weekdays 9:00-17:00)",
            ),
            complaints=Sentence("上記の窓口で承ります。", "The enquiries desk above."),
        ),
        "labels": Labels(
            {
                "crm": Sentence("顧客情報", "Customer records"),
                "hr": Sentence("人事記録", "Personnel records"),
                "legacy": Sentence("旧顧客台帳", "Former customer register"),
            },
        ),
        "addressee": "山田 太郎",
        "response": make_response(
            Kind.DISCLOSURE,
            status=ResponseStatus.PARTIALLY_COMPLETED,
            results=results,
            systems={"crm": TaskStatus.OK, "hr": TaskStatus.OK, "legacy": TaskStatus.FAILED},
            reasons=[
                Reason(
                    code="serious_interference_with_business",
                    message=REFUSED,
                    message_ja=REFUSED_JA,
                    system="hr",
                ),
                Reason(code="system_unavailable", message=UNAVAILABLE, system="legacy"),
            ],
        ),
        "results": results,
    }


def pdf_text(pdf: bytes) -> str:
    """All pages' text, with whitespace removed: line wraps fall anywhere in a table cell."""
    reader = PdfReader(io.BytesIO(pdf))
    return "".join("".join(page.extract_text().split()) for page in reader.pages)


def squeeze(text: str) -> str:
    return "".join(text.split())


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def wide_characters(letter_html: str) -> set[str]:
    """The Japanese (full-width) characters a reader sees in the letter; the ideographic
    space draws nothing by design."""
    parser = _Text()
    parser.feed(letter_html)
    text = "".join(parser.chunks)
    return {c for c in text if unicodedata.east_asian_width(c) in "WF" and not c.isspace()}


def _to_unicode(cmap: bytes) -> dict[int, str]:
    pairs = re.findall(rb"<([0-9a-fA-F]{4})>\s*<([0-9a-fA-F]+)>", cmap)
    return {int(gid, 16): bytes.fromhex(text.decode()).decode("utf-16-be") for gid, text in pairs}


def without_real_glyph(pdf: bytes, characters: set[str]) -> set[str]:
    """The characters the PDF does not draw with a real glyph of an embedded font.

    A character is drawn with a real glyph when every font that draws it maps it
    to a glyph that is not .notdef (0), exists in the embedded font program and
    has an outline. A character no font draws counts as missing too.
    """
    real: dict[str, bool] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            cid_font = font["/DescendantFonts"][0].get_object()
            assert cid_font["/CIDToGIDMap"] == "/Identity"
            program = cid_font["/FontDescriptor"]["/FontFile2"].get_object().get_data()
            tt = TTFont(io.BytesIO(program))
            glyphs, order = tt.getGlyphSet(), tt.getGlyphOrder()
            for gid, text in _to_unicode(font["/ToUnicode"].get_object().get_data()).items():
                drawn = 0 < gid < len(order)
                if drawn:
                    pen = BoundsPen(glyphs)
                    glyphs[order[gid]].draw(pen)
                    drawn = pen.bounds is not None
                for char in text:
                    real[char] = real.get(char, True) and drawn
    return {c for c in characters if not real.get(c, False)}


def artifact(name: str) -> Path:
    folder = Path(os.environ.get("DSR_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def save_page_one(pdf: bytes, path: Path) -> None:
    document = pypdfium2.PdfDocument(pdf)
    try:
        document[0].render(scale=1.25).to_pil().save(path)  # 90 dpi
    finally:
        document.close()


def test_written_disclosure_pdf_has_the_data_the_reasons_and_japanese(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    info = build_package(store, method="written", **written_disclosure())

    assert sorted(info.files) == ["letter.html", "letter.pdf", "manifest.json"]
    pdf = store.get(PREFIX + "letter.pdf")
    assert pdf.startswith(b"%PDF-")
    listing = {f["name"]: f for f in json.loads(store.get(PREFIX + "manifest.json"))["files"]}
    assert listing["letter.pdf"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert listing["letter.pdf"]["size"] == len(pdf)
    assert info.files["letter.pdf"] == hashlib.sha256(pdf).hexdigest()

    text = pdf_text(pdf)
    for heading in [
        "開示請求に対する回答Responsetoyourdisclosurerequest",
        "システム別の結果/Outcomepersystem",
        "理由/Reasons",
        "保有個人データ/Yourpersonaldata",
        "受付番号/RequestID",
    ]:
        assert heading in text
    for row in CRM:
        for key, value in row.items():
            if key != "_source":
                assert squeeze(str(value)) in text, value
    # a ground of refusal in the regulation's words, with the reason given, in both
    # languages; a failed system by the catalogue's words, not its internal error
    ground = appi.POLICY.refusal_codes["serious_interference_with_business"]
    assert squeeze(f"{ground.ja}（{REFUSED_JA}）") in text
    assert squeeze(f"{ground.en} ({REFUSED})") in text
    assert squeeze("旧顧客台帳での処理が完了しなかったため") in text
    assert squeeze(UNAVAILABLE) not in text
    assert "serious_interference_with_business" in text and "system_unavailable" in text
    assert "一部対応/Completedinpart" in text

    letter = store.get(PREFIX + "letter.html").decode()
    japanese = wide_characters(letter)
    assert {"開", "山", "ヤ", "の", "。"} <= japanese
    assert without_real_glyph(pdf, japanese) == set()

    page = artifact("letter-page1.png")
    save_page_one(pdf, page)
    assert page.read_bytes().startswith(b"\x89PNG")


def test_correction_pdf_lists_before_and_after(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    details = {
        "changes": [
            {"table": "customers", "field": "name", "old": "山田 太朗", "new": "山田 太郎"},
            {
                "table": "customers",
                "field": "email",
                "old": "old@example.jp",
                "new": "taro@example.jp",
            },
        ],
        "not_found": ["fax"],
    }
    results = [make_result("crm", Kind.CORRECTION, details=details)]
    response = make_response(
        Kind.CORRECTION,
        systems={"crm": TaskStatus.OK},
        results=results,
        requested=["name", "email", "fax"],
    )
    build_package(store, response=response, results=results, method="written")

    pdf = store.get(PREFIX + "letter.pdf")
    text = pdf_text(pdf)
    assert "訂正等請求に対する回答" in text and "訂正内容/Changesmade" in text
    assert "訂正前/Before山田太朗訂正後/After山田太郎" in text
    assert "訂正前/Beforeold@example.jp訂正後/Aftertaro@example.jp" in text
    assert "項目ごとの結果/Outcomeperfield" in text
    assert (
        "fax" + "この項目を保有していません（crm（表示名未登録））/Notheldbycrm(nodisplayname)"
        in text
    )
    letter = store.get(PREFIX + "letter.html").decode()
    assert without_real_glyph(pdf, wide_characters(letter)) == set()


def test_the_same_letter_gives_the_same_pdf_bytes(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    first = build_package(store, method="written", **written_disclosure())
    pdf = store.get(PREFIX + "letter.pdf")
    again = written_disclosure()
    random.Random(3).shuffle(again["results"])
    assert build_package(store, method="written", **again) == first
    assert store.get(PREFIX + "letter.pdf") == pdf

    info = PdfReader(io.BytesIO(pdf)).metadata
    assert info is not None
    dated = COMPLETED.strftime("D:%Y%m%d%H%M%S+00'00")  # completed_at is in UTC
    assert info["/CreationDate"] == info["/ModDate"] == dated


def _latin_only_font() -> Path:
    """DejaVu Sans, which has no Japanese, from matplotlib (a dependency of the font package)."""
    spec = importlib.util.find_spec("matplotlib")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


@pytest.mark.parametrize(
    ("font", "has_japanese"),
    [(bundled_font(), True), (_latin_only_font(), False)],
    ids=["bundled", "latin-only"],
)
def test_japanese_glyphs_come_from_the_bundled_font_not_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, font: Path, has_japanese: bool
) -> None:
    # fontconfig with no fonts at all: only the @font-face font can draw anything
    config = tmp_path / "fonts.conf"
    config.write_text('<?xml version="1.0"?>\n<fontconfig></fontconfig>\n')
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    letter = (
        '<!DOCTYPE html><html lang="ja"><body><h1>開示請求に対する回答 / Response</h1>'
        "<p>山田太郎さま、ヤマダ タロウ。taro@example.jp</p></body></html>"
    )
    pdf = render_pdf(letter, dated=COMPLETED, font=font)

    japanese = wide_characters(letter)
    missing = without_real_glyph(pdf, japanese)
    assert missing == (set() if has_japanese else japanese)
    assert without_real_glyph(pdf, set("Response taro@example.jp") - {" "}) == set()
