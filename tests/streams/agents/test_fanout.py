"""Fan-out of a batch of accepted requests: each with its own identifiers, in one ledger
transaction whatever the batch's size."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.ledger import Action
from streams import topics
from streams.agents import fanout, intake
from streams.context import Outgoing, Pipeline
from streams.records import Accepted, Task
from tests.streams.agents.fixtures import to, transactions

PEOPLE = {"f-taro": TARO, "f-jiro": JIRO, "f-hanako": HANAKO}


def submit(p: Pipeline, request_id: str, identifiers: dict[str, str]) -> None:
    raw = json.dumps(event(request_id, "disclosure", identifiers)).encode()
    intake.handle_request(p, raw)


def opened(p: Pipeline, out: list[Any]) -> list[Task]:
    tasks = [
        Task.model_validate_json(o.value) for o in out if o.topic.startswith(topics.TASKS_PREFIX)
    ]
    return [p.sealer.open(t) if p.sealer is not None else t for t in tasks]


def fanned_out(p: Pipeline, request_id: str) -> int:
    return sum(e.action == Action.FANNED_OUT for e in p.ledger.timeline(request_id))


def test_a_batch_sends_each_request_its_own_identifiers(pipeline: Pipeline) -> None:
    for request_id, who in PEOPLE.items():
        submit(pipeline, request_id, who)
    out = fanout.handle_batch(pipeline, list(PEOPLE))
    tasks = opened(pipeline, out)
    assert sorted({t.request_id for t in tasks}) == sorted(PEOPLE)
    for task in tasks:  # look-alikes side by side: nobody's identifiers in another's task
        assert task.identities == [PEOPLE[task.request_id]]
    for request_id in PEOPLE:
        assert pipeline.ledger.request(request_id).status == "fanned_out"  # type: ignore[union-attr]
        assert fanned_out(pipeline, request_id) == 1
        assert [t.task_id for t in pipeline.ledger.tasks(request_id)] == [
            t.task_id for t in tasks if t.request_id == request_id
        ]


def test_a_batch_takes_as_many_transactions_as_one_request(pipeline: Pipeline) -> None:
    for request_id, who in PEOPLE.items():
        submit(pipeline, request_id, who)
        submit(pipeline, f"{request_id}-alone", who)
    with transactions(pipeline) as alone:
        fanout.handle_accepted(pipeline, "f-taro-alone")
    with transactions(pipeline) as batch:
        fanout.handle_batch(pipeline, list(PEOPLE))
    assert len(alone) > 0 and len(batch) == len(alone)


def test_a_request_twice_in_a_batch_is_fanned_out_once(pipeline: Pipeline) -> None:
    submit(pipeline, "f-taro", TARO)
    out = fanout.handle_batch(pipeline, ["f-taro", "f-taro"])
    assert len(opened(pipeline, out)) == len(pipeline.ledger.tasks("f-taro")) == 1
    assert fanned_out(pipeline, "f-taro") == 1


def test_one_fanned_out_already_re_sends_and_the_others_fan_out(pipeline: Pipeline) -> None:
    for request_id, who in PEOPLE.items():
        submit(pipeline, request_id, who)
    first = opened(pipeline, fanout.handle_accepted(pipeline, "f-taro"))
    out = fanout.handle_batch(pipeline, ["f-nobody", *PEOPLE])  # an unknown id is skipped
    again = [t for t in opened(pipeline, out) if t.request_id == "f-taro"]
    assert [t.task_id for t in again] == [t.task_id for t in first]  # re-sent, not re-planned
    assert {t.request_id for t in opened(pipeline, out)} == set(PEOPLE)
    assert all(fanned_out(pipeline, request_id) == 1 for request_id in PEOPLE)
    assert len(pipeline.ledger.tasks("f-taro")) == len(first)


def _intake(p: Pipeline, raws: list[bytes], first: int = 0) -> list[Outgoing]:
    """An intake batch read at ``first`` and on, as the worker's intake stage sends it."""
    events = [(raw, None, f"dsr.requests/0/{first + i}") for i, raw in enumerate(raws)]
    return fanout.in_place(p, intake.handle_batch(p, events, _never))


def _never(i: int, exc: Exception) -> list[Outgoing]:
    raise AssertionError(f"event {i} failed: {exc!r}")


def _raws() -> list[bytes]:
    unsigned = {**event("f-bad", "disclosure", TARO), "kind": "no-such-kind"}
    return [
        *(json.dumps(event(rid, "disclosure", who)).encode() for rid, who in PEOPLE.items()),
        json.dumps(unsigned).encode(),
    ]


def test_an_intake_batch_fans_out_what_it_accepts_in_place(pipeline: Pipeline) -> None:
    out = _intake(pipeline, _raws())
    assert not [o for o in out if o.topic == topics.ACCEPTED]
    assert [o.key for o in out if o.topic == topics.REJECTED] == [b"f-bad"]
    tasks = opened(pipeline, out)
    for task in tasks:  # look-alikes in one batch: nobody's identifiers in another's task
        assert task.identities == [PEOPLE[task.request_id]]
    for request_id in PEOPLE:
        assert pipeline.ledger.request(request_id).status == "fanned_out"  # type: ignore[union-attr]
        assert [t.task_id for t in pipeline.ledger.tasks(request_id)] == [
            t.task_id for t in tasks if t.request_id == request_id
        ]


def test_a_batch_read_again_re_sends_its_tasks_and_plans_none_again(pipeline: Pipeline) -> None:
    """A worker killed after the batch's fan-out was committed, before it was sent: the
    batch read again sends the same tasks; nothing is planned or audited twice."""
    raws = _raws()
    first = opened(pipeline, _intake(pipeline, raws))
    again = opened(pipeline, _intake(pipeline, raws))
    assert sorted(t.task_id for t in again) == sorted(t.task_id for t in first)
    assert all(fanned_out(pipeline, request_id) == 1 for request_id in PEOPLE)
    # sent again by the client (elsewhere in the log), it is a re-send: nothing goes out
    resent = _intake(pipeline, raws, first=100)
    assert not opened(pipeline, resent) and not to(topics.ACCEPTED, resent)


def test_what_cannot_be_fanned_out_in_place_goes_to_fan_out(pipeline: Pipeline) -> None:
    """The ledger locked by another writer between the admissions and the fan-out: the
    accepted requests are sent to ``dsr.accepted`` instead, and fanned out from there."""
    events = [(raw, None, f"dsr.requests/0/{i}") for i, raw in enumerate(_raws())]
    out = intake.handle_batch(pipeline, events, _never)
    url = pipeline.ledger.engine.url
    holder = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # an operator's write, a migration
        sent = fanout.in_place(pipeline, out)
    finally:
        holder.close()
    assert sent == out
    assert sorted(o.key for o in to(topics.ACCEPTED, sent)) == sorted(k.encode() for k in PEOPLE)
    assert all(pipeline.ledger.request(r).status == "accepted" for r in PEOPLE)  # type: ignore[union-attr]
    ids = [Accepted.model_validate_json(o.value).request_id for o in to(topics.ACCEPTED, sent)]
    tasks = opened(pipeline, fanout.handle_batch(pipeline, ids))
    assert {t.request_id for t in tasks} == set(PEOPLE)
