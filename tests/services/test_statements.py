"""The principal's sentences, in Japanese and English, from outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services import statements
from streams.records import (
    FieldOutcome,
    Kind,
    Outcome,
    Regulation,
    ResponseEvent,
    ResponseStatus,
    SystemOutcome,
    TaskStatus,
)

AT = datetime(2025, 4, 1, tzinfo=UTC)


def system(outcome: Outcome, **kw: object) -> SystemOutcome:
    status = {
        Outcome.NOT_APPLICABLE: TaskStatus.NOT_APPLICABLE,
        Outcome.FAILED: TaskStatus.FAILED,
        Outcome.TIMED_OUT: TaskStatus.TIMED_OUT,
    }.get(outcome, TaskStatus.OK)
    return SystemOutcome.model_validate(
        {"system": "crm", "status": status, "outcome": outcome, **kw}
    )


def response(kind: Kind, status: ResponseStatus, *systems: SystemOutcome) -> ResponseEvent:
    return ResponseEvent(
        request_id="r-1",
        kind=kind,
        regulation=Regulation.APPI,
        status=status,
        systems=list(systems),
        received_at=AT,
        completed_at=AT,
        latency_ms=0,
        processing_ms=0,
        deadline=AT,
    )


def test_each_status_has_its_label_in_both_languages() -> None:
    labels = {s: statements.status_label(s) for s in ResponseStatus}
    assert (labels[ResponseStatus.COMPLETED].ja, labels[ResponseStatus.COMPLETED].en) == (
        "全部対応",
        "Completed in full",
    )
    assert str(labels[ResponseStatus.PARTIALLY_COMPLETED]) == "一部対応 / Completed in part"
    assert str(labels[ResponseStatus.REFUSED]) == "対応不可 / Refused"
    assert str(labels[ResponseStatus.FAILED]) == "対応できませんでした / Could not be completed"
    others = [label for s, label in labels.items() if s is not ResponseStatus.COMPLETED]
    assert all("全部" not in x.ja and "in full" not in x.en for x in others)


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_of_every_kind_has_a_sentence_in_both_languages(
    kind: Kind, outcome: Outcome
) -> None:
    said = statements.system_statement(kind, system(outcome, records=2, changed=2))
    assert said.ja and said.en and said.ja != said.en
    assert not any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in said.en)
    assert any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in said.ja)


@pytest.mark.parametrize(
    ("kind", "outcome", "extra", "ja", "en"),
    [
        (Kind.DISCLOSURE, Outcome.DONE, {"records": 3}, "3件", "3 record(s)"),
        (Kind.DISCLOSURE, Outcome.NO_DATA, {}, "該当するデータはありません", "No data found"),
        (Kind.ERASURE, Outcome.DONE, {"changed": 2}, "2件を消去しました", "2 record(s) erased"),
        (
            Kind.ERASURE,
            Outcome.DONE,
            {"changed": 2, "kept": 2},
            "2件の記録は保持し、お客様を識別する項目を消去または仮名化しました",
            "2 record(s) kept, with the fields that identify you removed or pseudonymised",
        ),
        (
            Kind.ERASURE,
            Outcome.DONE,
            {"changed": 3, "kept": 1},
            "2件を消去しました。1件の記録は保持し、お客様を識別する項目を消去または仮名化しました",
            "2 record(s) erased; 1 record(s) kept, with the fields that identify you removed "
            "or pseudonymised",
        ),
        (
            Kind.ERASURE,
            Outcome.DONE,
            {"changed": 1, "pending_purge": 1},
            "1件を現在のデータから削除しました（以前の版は、定期的な整理で削除されるまでシステムの"
            "ログに残ります）",
            "1 record(s) deleted from current data (earlier copies stay in the system's log "
            "until its scheduled clean-up removes them)",
        ),
        (
            Kind.ERASURE,
            Outcome.DONE,
            {"changed": 4, "kept": 1, "pending_purge": 2},
            "1件を消去しました。2件を現在のデータから削除しました（以前の版は、定期的な整理で削除"
            "されるまでシステムのログに残ります）。1件の記録は保持し、お客様を識別する項目を消去"
            "または仮名化しました",
            "1 record(s) erased; 2 record(s) deleted from current data (earlier copies stay in "
            "the system's log until its scheduled clean-up removes them); 1 record(s) kept, "
            "with the fields that identify you removed or pseudonymised",
        ),
        (Kind.ERASURE, Outcome.ALREADY_DONE, {}, "既に消去済みでした", "Already erased"),
        (
            Kind.CORRECTION,
            Outcome.DONE,
            {"fields": ["email", "name"]},
            "2項目を訂正しました",
            "2 field(s) corrected",
        ),
        (
            Kind.CORRECTION,
            Outcome.FIELD_NOT_CORRECTABLE,
            {},
            "項目を保有していますが、訂正できません",
            "Holds the fields, but may not correct them",
        ),
        (
            Kind.SUSPENSION,
            Outcome.NOT_SUPPORTED,
            {},
            "お客様のデータを保有していますが、この請求には対応できません",
            "Holds your data, but cannot carry out this request",
        ),
        (
            Kind.DISCLOSURE,
            Outcome.REFUSED,
            {"records": 1},
            "1件を開示し、その他は開示できません",
            "1 record(s) disclosed; the rest is withheld",
        ),
    ],
)
def test_system_sentences(
    kind: Kind, outcome: Outcome, extra: dict[str, object], ja: str, en: str
) -> None:
    said = statements.system_statement(kind, system(outcome, **extra))
    assert (said.ja, said.en) == (ja, en)


def test_a_reason_code_is_given_once() -> None:
    said = statements.system_statement(
        Kind.DISCLOSURE, system(Outcome.NOT_APPLICABLE, reason_code="not_applicable")
    )
    assert str(said) == "対象外 / Not applicable [not_applicable]"


def test_field_sentences_name_the_systems_in_both_languages() -> None:
    f = FieldOutcome(field="email", outcome=Outcome.FIELD_NOT_CORRECTABLE, systems=["crm", "hr"])
    said = statements.field_statement(f)
    assert said.ja == "保有していますが訂正できません（crm, hr）"
    assert said.en == "Held in crm, hr, but may not be corrected there"
    gone = statements.field_statement(
        FieldOutcome(field="fax", outcome=Outcome.FIELD_NOT_FOUND, systems=["crm"])
    )
    assert str(gone) == "この項目を保有していません（crm） / Not held by crm"


def test_nothing_held_is_said_only_when_every_system_asked_found_nothing() -> None:
    empty = system(Outcome.NO_DATA)
    out = system(Outcome.NOT_APPLICABLE)
    said = statements.nothing_held(response(Kind.DISCLOSURE, ResponseStatus.COMPLETED, empty, out))
    assert said is not None
    assert said.ja == "お客様に関する保有個人データは存在しませんでした。"
    assert said.en == "We hold no personal data about you in any of our systems."
    records = statements.nothing_held(
        response(Kind.THIRD_PARTY_RECORDS, ResponseStatus.COMPLETED, empty)
    )
    assert records is not None and "third parties" in records.en and "第三者提供" in records.ja
    for other in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.ALREADY_DONE, Outcome.REFUSED):
        r = response(Kind.DISCLOSURE, ResponseStatus.COMPLETED, empty, system(other))
        assert statements.nothing_held(r) is None, other
    # only an answered request says it; an erasure's "nothing found" is no such claim
    assert statements.nothing_held(response(Kind.DISCLOSURE, ResponseStatus.FAILED, out)) is None
    assert statements.nothing_held(response(Kind.ERASURE, ResponseStatus.COMPLETED, empty)) is None
