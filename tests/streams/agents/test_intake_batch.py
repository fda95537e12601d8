"""Intake's batches: admitted in one ledger transaction, with what each event alone
would have given, and a failure kept to its own event."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.demo.scenario import HANAKO, JIRO, TARO, event
from streams import topics
from streams.agents import intake
from streams.context import Outgoing, Pipeline
from tests.fixtures.ledger_reads import rejected_events
from tests.streams.agents.fixtures import body, to

AT = "2026-12-01T09:00:00+09:00"
PENDING = {"status": "pending", "method": "drivers_licence", "reference": "KYC-p"}
VERIFIED = {"status": "verified", "method": "drivers_licence", "reference": "KYC-p"}
#: Events under request ids ``{prefix}-1`` to ``{prefix}-5``; several share one, so that a
#: sequence of them holds new requests, re-sends, conflicts and releases.
TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("1", event("", "disclosure", TARO, received_at=AT)),
    ("1", event("", "disclosure", JIRO, received_at=AT)),  # a changed subject
    ("2", event("", "erasure", HANAKO, grounds=["no_longer_needed"], received_at=AT)),
    ("3", event("", "erasure", TARO, grounds=["made_up"], received_at=AT)),  # unknown ground
    ("4", {"schema_version": "1.0", "request_id": "", "kind": "forget_me"}),  # malformed
    ("5", event("", "disclosure", TARO, verification=PENDING, received_at=AT)),  # held
    ("5", event("", "disclosure", TARO, verification=VERIFIED, received_at=AT)),  # released
]
prefixes = itertools.count()


def _raw(prefix: str, template: int) -> bytes:
    slot, body_ = TEMPLATES[template]
    return json.dumps({**body_, "request_id": f"{prefix}-{slot}"}).encode()


def _said(prefix: str, out: list[Outgoing]) -> list[tuple[str, str, str | None]]:
    """What ``out`` says, without the prefix: each message's topic and key, and a
    rejection's reason."""
    return [
        (
            o.topic,
            (o.key or b"").decode().removeprefix(prefix),
            body(o)["reason_code"] if o.topic == topics.REJECTED else None,
        )
        for o in out
    ]


def _trail(p: Pipeline, prefix: str) -> list[tuple[str, str, str, Any]]:
    """Every request's audit trail and state, without the prefix."""
    found = []
    for slot in sorted({slot for slot, _ in TEMPLATES}):
        rid = f"{prefix}-{slot}"
        row = p.ledger.request(rid)
        state = (row.status, row.hold_reason) if row else None
        found += [(slot, e.actor, e.action, state) for e in p.ledger.timeline(rid)]
    return found


def _never(i: int, exc: Exception) -> list[Outgoing]:
    raise AssertionError(f"event {i} failed") from exc


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(0, len(TEMPLATES) - 1), min_size=1, max_size=8))
def test_a_batch_gives_what_its_events_give_each_alone(
    pipeline: Pipeline, templates: list[int]
) -> None:
    n = next(prefixes)
    alone, batch = f"alone{n}", f"batch{n}"
    one_by_one = [o for t in templates for o in intake.handle_request(pipeline, _raw(alone, t))]
    together = intake.handle_batch(
        pipeline, [(_raw(batch, t), None, None) for t in templates], _never
    )
    assert _said(batch, together) == _said(alone, one_by_one)
    assert _trail(pipeline, batch) == _trail(pipeline, alone)


@pytest.mark.parametrize("stage", ["check", "admission", "answer"])
def test_an_event_that_cannot_be_handled_fails_alone(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """An event whose check, admission or answer raises goes to ``fail`` alone; the
    others are admitted and sent on to fan-out. Handled again once the fault is gone (a
    redrive of its dead letter), it is admitted, unless its admission was committed with
    the others' before its answer failed: then it is a duplicate."""

    def failing(real: Any, request_id: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if request_id(*args) == "f-2":
                raise RuntimeError(f"the {stage} failed")
            return real(*args, **kwargs)

        return run

    if stage == "check":
        monkeypatch.setattr(intake.rules, "decide", failing(intake.rules.decide, _id))
    elif stage == "admission":  # sealing the event: its data key could not be made
        monkeypatch.setattr(pipeline.ledger, "_kept", failing(pipeline.ledger._kept, _first))
    else:
        told = failing(intake.notices.on_admission, _id)
        monkeypatch.setattr(intake.notices, "on_admission", told)
    raws = [json.dumps({**TEMPLATES[0][1], "request_id": f"f-{i}"}).encode() for i in (1, 2, 3)]
    failed: list[tuple[int, str]] = []

    def fail(i: int, exc: Exception) -> list[Outgoing]:
        failed.append((i, str(exc)))
        return []

    out = intake.handle_batch(pipeline, [(raw, None, None) for raw in raws], fail)
    assert failed == [(1, f"the {stage} failed")]
    assert [o.key for o in to(topics.ACCEPTED, out)] == [b"f-1", b"f-3"]
    admitted = stage == "answer"
    for rid in ("f-1", "f-2", "f-3"):
        row = pipeline.ledger.request(rid)
        assert (row is not None) == (rid != "f-2" or admitted), rid
    monkeypatch.undo()
    again = intake.handle_request(pipeline, raws[1])
    assert [o.key for o in to(topics.ACCEPTED, again)] == ([] if admitted else [b"f-2"])
    actions = [e.action for e in pipeline.ledger.timeline("f-2")]
    assert actions == (["received", "duplicate_ignored"] if admitted else ["received"])


def _id(event: Any, *_: Any) -> Any:
    return event.request_id


def _first(request_id: str, *_: Any) -> str:
    return request_id


def test_a_batch_read_again_records_each_rejection_once(pipeline: Pipeline) -> None:
    """A batch handled again (its worker killed before its offsets were committed, or an
    outage waited out) records its rejections once, and rejects nothing it admitted:
    the held request's event is not a conflict with the request its release changed.
    The same events sent again are recorded again, as the new submissions they are."""
    raws = [_raw("again", t) for t in range(len(TEMPLATES))]

    def rejections(first: int) -> list[tuple[str, str, str | None]]:
        events = [(raw, None, f"dsr.requests/0/{first + i}") for i, raw in enumerate(raws)]
        out = intake.handle_batch(pipeline, events, _never)
        return _said("again", to(topics.REJECTED, out))

    first = rejections(0)
    assert [reason for *_, reason in first] == [
        "request_id_conflict",  # a changed subject
        "unknown_ground",
        "schema_violation",
    ]
    once = rejected_events(pipeline.ledger)
    assert len(once) == len(first)
    # said again on the topic (its consumers keep one a digest), recorded once
    assert rejections(0) == first
    assert [r.id for r in rejected_events(pipeline.ledger)] == [r.id for r in once]
    trail = [e for i in range(1, 6) for e in pipeline.ledger.timeline(f"again-{i}")]
    assert len([e for e in trail if e.action == "rejected"]) == len(first)

    # sent again, the held request's first event would now take its evidence away
    held_again = (topics.REJECTED, "-5", "request_id_conflict")
    assert rejections(100) == [*first, held_again]
    assert len(rejected_events(pipeline.ledger)) == 2 * len(first) + 1


def test_a_batch_read_again_changes_no_request_and_audits_nothing_again(
    pipeline: Pipeline,
) -> None:
    """Every kind of event, read again at the same places in the log: a new request, a
    changed subject, a held request and the event that released it. The second reading
    adds nothing to any audit trail: no ``duplicate_ignored``, and the held request's
    first event is not a conflict with the request it released. Sent again later, the
    same events are re-sends, and audited as such."""
    raws = [_raw("read", t) for t in range(len(TEMPLATES))]

    def read(first: int) -> list[tuple[str, str, str | None]]:
        events = [(raw, None, f"dsr.requests/0/{first + i}") for i, raw in enumerate(raws)]
        out = intake.handle_batch(pipeline, events, _never)
        return _said("read", out)

    first = read(0)
    trail = _trail(pipeline, "read")
    assert ("5", "rules", "released", ("accepted", None)) in trail
    assert ("1", "intake", "received", ("accepted", None)) in trail
    again = read(0)
    assert _trail(pipeline, "read") == trail
    assert [s for s in again if s[0] not in (topics.NOTICES, topics.ACCEPTED)] == [
        s for s in first if s[0] == topics.REJECTED
    ]  # said again, recorded once (``test_a_batch_read_again_records_each_rejection_once``)
    # and each request accepted goes to fan-out again, which re-sends what is pending
    # (``test_fanout.py``): the batch was read again because it may not have been sent
    assert {s for s in again if s[0] == topics.ACCEPTED} == {
        s for s in first if s[0] == topics.ACCEPTED
    }

    read(100)
    added = Counter((slot, action) for slot, _, action, _ in _trail(pipeline, "read"))
    added.subtract((slot, action) for slot, _, action, _ in trail)
    assert +added == {
        ("1", "duplicate_ignored"): 1,
        ("1", "rejected"): 1,  # the changed subject
        ("2", "duplicate_ignored"): 1,
        ("3", "rejected"): 1,
        ("4", "rejected"): 1,
        ("5", "rejected"): 1,  # the held event: it would take the evidence away
        ("5", "duplicate_ignored"): 1,
    }
