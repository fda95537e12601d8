"""No notice, letter or summary claims more than the response, whatever the outcomes.

Hypothesis generates what the systems did (statuses, records, changes, refusals,
identity lookups, and per-field correction results), the request kind and the
delivery method. The response is summarised as the aggregator does it, and the
notice, the HTML letter and the package summary are rendered for real. Each claim in
them is checked against the generated facts, not against the computed outcomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.delivery.contents import collect
from services.delivery.labels import Labels
from services.delivery.letter import render_letter
from services.delivery.package import summary as package_summary
from services.notify.compose import for_response
from services.responses import HOLDING_MEANS_ACTING, TaskOutcome, summarise
from services.rules.sentence import Sentence
from streams.records import (
    HOLDS_DATA,
    Kind,
    Reason,
    RequestEvent,
    ResponseEvent,
    ResponseStatus,
    TaskResult,
    TaskStatus,
)

AT = datetime(2025, 4, 1, 9, tzinfo=UTC)
FIELDS = ["email", "name", "fax"]
SYSTEMS = ["sys-a", "sys-b", "sys-c", "sys-d"]
FieldFate = Literal["changed", "not_found", "not_correctable", "same"]
COMPLETED_CLAIMS = ("全部対応", "Completed in full")
NOTHING_HELD_CLAIMS = ("保有個人データは存在しませんでした", "We hold no personal data")
#: Sentences that say something was changed (not "already" so, nor "nothing was").
CHANGE_CLAIMS = re.compile(
    r"訂正しました|件を消去しました|件の利用を停止しました|件の第三者提供を停止しました"
    r"|件を現在のデータから削除しました|record\(s\) deleted from current data"
    r"|field\(s\) corrected|\bCorrected\b|record\(s\) erased|record\(s\) stopped"
    r"|record\(s\) to third parties stopped"
)


@dataclass(frozen=True)
class Fact:
    """What one system really did."""

    system: str
    status: TaskStatus
    looked_up: bool
    records: int
    changed: int
    refusal: bool
    fields: dict[str, FieldFate]
    #: Of ``changed``, an erasure's records kept with identifying fields removed.
    kept: int = 0
    #: Of ``changed``, an erasure's records whose earlier copies await a clean-up.
    pending: int = 0

    @property
    def changed_fields(self) -> set[str]:
        return {f for f, fate in self.fields.items() if fate == "changed"}

    @property
    def found_something(self) -> bool:
        return bool(self.records or self.changed or self.changed_fields)


@st.composite
def facts(draw: st.DrawFn) -> tuple[Kind, str, list[str], list[Fact]]:
    kind = draw(st.sampled_from(list(Kind)))
    method = draw(st.sampled_from(["electronic", "written"]))
    requested = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True))
    names = draw(st.lists(st.sampled_from(SYSTEMS), min_size=1, max_size=4, unique=True))
    out = []
    for name in sorted(names):
        status = draw(
            st.sampled_from(
                [
                    TaskStatus.OK,
                    TaskStatus.OK,
                    TaskStatus.OK,
                    TaskStatus.FAILED,
                    TaskStatus.TIMED_OUT,
                    TaskStatus.NOT_APPLICABLE,
                    TaskStatus.REFUSED,
                ]
            )
        )
        ok = status is TaskStatus.OK
        fates: dict[str, FieldFate] = {}
        if kind is Kind.CORRECTION and ok:
            fate = st.sampled_from(["changed", "not_found", "not_correctable", "same"])
            fates = {f: draw(fate) for f in requested}
        reads = kind in (Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS, Kind.PURPOSE_NOTIFICATION)
        acts = kind in (Kind.ERASURE, Kind.SUSPENSION, Kind.THIRD_PARTY_STOP)
        changed = draw(st.integers(0, 3)) if ok and acts else 0
        kept = draw(st.integers(0, changed)) if kind is Kind.ERASURE else 0
        pending = draw(st.integers(0, changed - kept)) if kind is Kind.ERASURE else 0
        out.append(
            Fact(
                system=name,
                status=status,
                looked_up=draw(st.booleans()),
                records=draw(st.integers(0, 2)) if ok and reads else 0,
                changed=changed,
                kept=kept,
                pending=pending,
                refusal=status is TaskStatus.REFUSED or (ok and draw(st.integers(0, 4)) == 0),
                fields=fates,
            )
        )
    return kind, method, requested, out


def result_of(kind: Kind, fact: Fact) -> TaskResult | None:
    if fact.status not in (TaskStatus.OK, TaskStatus.REFUSED):
        return None
    details: dict[str, Any] = {}
    changed = fact.changed
    if kind is Kind.CORRECTION:
        details = {
            "changes": [
                {"table": "t", "field": f, "old": "old", "new": "new"}
                for f in sorted(fact.changed_fields)
            ],
            "not_found": [f for f, fate in fact.fields.items() if fate == "not_found"],
            "not_correctable": [f for f, fate in fact.fields.items() if fate == "not_correctable"],
        }
        changed = len(fact.changed_fields)
    if kind is Kind.PURPOSE_NOTIFICATION:
        details[HOLDS_DATA] = bool(fact.records)
    refusal = Reason(code="withheld", message="withheld", system=fact.system)
    return TaskResult(
        request_id="p-1",
        task_id=f"p-1:{fact.system}:{kind}:0",
        system=fact.system,
        kind=kind,
        status="ok",
        records=[{"_source": "t", "n": i} for i in range(fact.records)]
        if kind is not Kind.PURPOSE_NOTIFICATION
        else [],
        changed=changed,
        kept=fact.kept,
        pending_purge=fact.pending,
        fields=sorted(fact.changed_fields),
        details=details,
        refusal=refusal if fact.refusal else None,
        started_at=AT,
        finished_at=AT,
    )


def request(kind: Kind, method: str, requested: list[str]) -> RequestEvent:
    extra: dict[str, Any] = {}
    if kind is Kind.CORRECTION:
        extra["correction"] = {"changes": [{"field": f, "value": "new"} for f in requested]}
    if kind in (Kind.SUSPENSION, Kind.ERASURE, Kind.THIRD_PARTY_STOP):
        extra["grounds"] = ["unlawful_use"]
    return RequestEvent.model_validate(
        {
            "schema_version": "1.0",
            "request_id": "p-1",
            "kind": kind,
            "regulation": "appi",
            "received_at": AT,
            "subject": {"identifiers": {"email": "p@example.jp"}},
            "verification": {"status": "verified"},
            "delivery": {"method": method, "address": "p@example.jp"},
            **extra,
        }
    )


def rendered(
    kind: Kind, method: str, requested: list[str], facts_: list[Fact]
) -> tuple[ResponseEvent, dict[str, str]]:
    results = {f.system: result_of(kind, f) for f in facts_}
    outcomes = [
        TaskOutcome(f.system, f.status, "down", results[f.system], f.looked_up) for f in facts_
    ]
    s = summarise(kind, outcomes, requested if kind is Kind.CORRECTION else [])
    where = "file:///responses/p-1/" + ("letter.html" if method == "written" else "data.json")
    response = ResponseEvent(
        request_id="p-1",
        kind=kind,
        regulation="appi",
        status=s.status,
        systems=s.systems,
        corrections=s.corrections,
        reasons=s.reasons,
        received_at=AT,
        completed_at=AT,
        latency_ms=0,
        processing_ms=0,
        deadline=AT,
        letter=where if method == "written" else None,
        package=where if method == "electronic" else None,
    )
    # each system labelled by its own name, so that the checks below find what is said
    # of it in every rendering
    labels = Labels({f.system: Sentence(f.system, f.system) for f in facts_})
    contents = collect(
        response, [r for r in results.values() if r is not None], None, labels=labels
    )
    event = request(kind, method, requested)
    texts = {"notice": for_response(event, response, "desk", labels).body}
    if method == "written":
        texts["letter"] = render_letter(contents)
    else:
        texts["summary"] = package_summary(contents)
    return response, texts


def system_lines(name: str, texts: dict[str, str]) -> list[str]:
    """What each rendering says about one system (labelled "name / name", its Japanese
    and English labels)."""
    label = f"{name} / {name}"
    lines = []
    for text in texts.values():
        lines += re.findall(rf"^- {label}: (.*)$", text, flags=re.M)
        lines += re.findall(rf"<tr><td>{label}</td><td>(.*?)</td></tr>", text)
        lines += re.findall(rf"<h3>{label}</h3>\n<p>(.*?)</p>", text)
    return lines


def field_lines(name: str, texts: dict[str, str]) -> list[str]:
    lines = []
    for text in texts.values():
        lines += re.findall(rf"^- {name}: (.*)$", text, flags=re.M)
        lines += re.findall(rf"<tr><td>{name}</td><td>(.*?)</td></tr>", text)
    return lines


@settings(max_examples=500, deadline=None)
@given(facts())
def test_no_rendering_claims_more_than_the_response(
    drawn: tuple[Kind, str, list[str], list[Fact]],
) -> None:
    kind, method, requested, facts_ = drawn
    response, texts = rendered(kind, method, requested, facts_)
    everything = "\n".join(texts.values())
    asked = [f for f in facts_ if f.status is not TaskStatus.NOT_APPLICABLE]
    trouble = [
        f
        for f in facts_
        if f.status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.REFUSED) or f.refusal
    ]

    # "Completed in full" only beside a completed status, which the facts bear out
    completed = response.status is ResponseStatus.COMPLETED
    for claim in COMPLETED_CLAIMS:
        assert (claim in everything) == completed, claim
    if completed:
        assert asked and not trouble
        if kind in HOLDING_MEANS_ACTING:  # a system holding the data had to act itself
            assert not any(f.status is TaskStatus.NOT_APPLICABLE and f.looked_up for f in facts_)
        if kind is Kind.CORRECTION:
            assert not any("not_correctable" in f.fields.values() for f in facts_)
            for name in requested:  # each field was corrected, or already right, somewhere
                assert any(
                    f.fields.get(name) == "changed"
                    or (f.fields.get(name) == "same" and f.looked_up)
                    for f in facts_
                ), name

    # "we hold no personal data" only when every system asked found nothing of theirs
    if any(claim in everything for claim in NOTHING_HELD_CLAIMS):
        assert asked and not trouble
        assert not any(f.found_something or f.looked_up for f in asked)
        assert kind in (Kind.DISCLOSURE, Kind.PURPOSE_NOTIFICATION)

    # a change is claimed only for a system that made one
    for fact in facts_:
        lines = system_lines(fact.system, texts)
        assert lines, f"no rendering says what {fact.system} did"
        for line in lines:
            if CHANGE_CLAIMS.search(line):
                assert fact.changed or fact.changed_fields, (fact, line)
            # records kept with identifying fields removed, or whose earlier copies await
            # a clean-up, are never told as erased outright
            erased = fact.changed - fact.kept - fact.pending
            for pattern, count in (
                (r"(\d+) record\(s\) erased", erased),
                (r"(\d+)件を消去しました", erased),
                (r"(\d+) record\(s\) deleted from current data", fact.pending),
                (r"(\d+)件を現在のデータから削除しました", fact.pending),
                (r"(\d+) record\(s\) kept", fact.kept),
                (r"(\d+)件の記録は保持し", fact.kept),
            ):
                for said in re.findall(pattern, line):
                    assert int(said) == count, (fact, line)
    for name in requested if kind is Kind.CORRECTION else []:
        for line in field_lines(name, texts):
            if m := re.search(r"Corrected in ([\w\-, ]+)", line):
                for system in m.group(1).split(", "):
                    [fact] = [f for f in facts_ if f.system == system]
                    assert name in fact.changed_fields, (name, line)
            # "no system holds the field" only when every system asked lacks it
            if "No system holds" in line:
                assert all(f.fields.get(name) == "not_found" for f in asked)
    for reason in response.reasons:
        if reason.code == "field_not_found":
            field = reason.message.split("'")[1]
            assert asked and all(f.fields.get(field) == "not_found" for f in asked), reason
        if reason.code == "no_applicable_system":
            assert not asked and response.status is not ResponseStatus.COMPLETED
