"""Every reason the principal can be given has Japanese text (APPI Art. 36)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from connectors.errors import ConnectorError
from services import rules
from services.rules import reasons
from services.rules.sentence import Sentence
from streams.records import Kind, Reason

ROOT = Path(__file__).resolve().parents[3]
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def codes_made_in_source() -> set[str]:
    """Every literal ``code=...`` of a ``Reason`` the pipeline builds, found in its source,
    so that a new reason without catalogue text fails here."""
    found = set()
    for package in ("services", "streams", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Reason":
                    for kw in node.keywords:
                        if kw.arg == "code" and isinstance(kw.value, ast.Constant):
                            found.add(kw.value.value)
    return found


def connector_error_codes() -> set[str]:
    todo, codes = [ConnectorError], set()
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if code := getattr(cls, "code", None):
            codes.add(f"{reasons.SYSTEM_PREFIX}{code}")
    return codes


def explained(code: str, regulation: str = "appi") -> Sentence:
    policy = rules.policy_for(regulation)
    reason = Reason(code=code, message="", system="crm", field="email")
    return reasons.explain(reason, Kind.DISCLOSURE.value, policy.refusal_codes)


def test_the_source_makes_reasons_the_catalogue_knows() -> None:
    made = codes_made_in_source()
    assert {"no_data", "not_supported", "field_not_found", "written_fallback"} <= made
    assert made <= reasons.RESPONSE.keys()


@pytest.mark.parametrize("regulation", sorted(rules.POLICIES))
def test_every_ground_of_refusal_is_in_japanese_and_english(regulation: str) -> None:
    for code, text in rules.policy_for(regulation).refusal_codes.items():
        assert JAPANESE.search(text.ja), code
        assert text.en and not JAPANESE.search(text.en), code
        assert explained(code, regulation) == text


def test_every_reason_code_has_japanese_text() -> None:
    codes = set(reasons.RESPONSE) | connector_error_codes() | codes_made_in_source()
    codes |= {"system_failed", "system_timed_out", "system_retries_exhausted"}
    for code in sorted(codes):
        text = explained(code.split(":")[0])
        assert JAPANESE.search(text.ja), code
        assert reasons.NO_JAPANESE not in text.ja, code
        assert text.en and not JAPANESE.search(text.en), code
    for code in reasons.HOLDS:
        assert JAPANESE.search(reasons.hold(code).ja), code
        assert reasons.NO_JAPANESE not in reasons.hold(code).ja


def test_a_reason_names_the_system_by_its_label() -> None:
    reason = Reason(code="system_timed_out", message="crm: no reply", system="crm")
    labelled = reasons.explain(
        reason, "erasure", {}, lambda name: Sentence("顧客情報", "Customer records")
    )
    assert labelled.ja.startswith("顧客情報から") and labelled.en.startswith("Customer records")
    assert "crm" not in str(labelled)


def test_an_unknown_code_says_visibly_that_it_has_no_japanese() -> None:
    reason = Reason(code="archived_elsewhere", message="Kept by the group's archive.")
    said = reasons.explain(reason, "disclosure", {})
    assert said.ja.startswith(reasons.NO_JAPANESE) and said.en == "Kept by the group's archive."
    given = reason.model_copy(update={"message_ja": "グループの保管庫で保管しています。"})
    assert reasons.explain(given, "disclosure", {}).ja == "グループの保管庫で保管しています。"
