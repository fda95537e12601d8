"""Aggregation of a batch of results: requests it finishes are completed together, in one
ledger transaction, each with a response and package of its own principal's data only."""

from __future__ import annotations

import json

import pytest

from services.delivery.package import read_package
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.ledger.models import Task as TaskRow
from streams import topics
from streams.agents import aggregate, fanout, intake, respond
from streams.agents.decode import parse_result
from streams.context import Outgoing
from streams.records import Task
from tests.streams.agents.fixtures import Harness, run_tasks, to, transactions

PEOPLE = {"a-taro": TARO, "a-jiro": JIRO, "a-hanako": HANAKO}


def drive_together(p: Harness, request_ids: list[str]) -> list[respond.Built]:
    """Fan the requests out together and run their waves, each wave's results recorded as
    one batch, as the worker does in a burst; the responses left to complete."""
    for request_id in request_ids:
        who = PEOPLE.get(request_id, TARO)
        intake.handle_request(p, json.dumps(event(request_id, "disclosure", who)).encode())
    out: list[Outgoing] = fanout.handle_batch(p, request_ids)
    built: list[respond.Built] = []
    while results := run_tasks(p, out):
        out = []
        for step in aggregate.record(p, [parse_result(p, r) for r in results]):
            done = step.advance(p)
            if isinstance(done, respond.Built):
                built.append(done)
            else:
                out += done
    return built


def test_a_batch_completes_each_request_with_only_its_principals_data(
    pipeline: Harness,
) -> None:
    built = drive_together(pipeline, list(PEOPLE))
    assert sorted(b.request_id for b in built) == sorted(PEOPLE)
    out = respond.conclude(pipeline, built)
    assert sorted(o.key.decode() for o in to(topics.RESPONSES, out)) == sorted(PEOPLE)
    assert sorted(o.key.decode() for o in to(topics.NOTICES, out)) == sorted(PEOPLE)
    for request_id, who in PEOPLE.items():
        row = pipeline.ledger.request(request_id)
        assert row is not None and row.status == "completed"
        data = read_package(pipeline.storage, request_id)["data.json"].decode()
        assert who["email"] in data  # look-alikes side by side: nobody else's data
        assert not any(p["email"] in data for p in PEOPLE.values() if p != who)
    # concluded again (a redelivered batch): the unpublished responses are sent again,
    # as they are, and nothing is completed twice
    again = to(topics.RESPONSES, respond.conclude(pipeline, built))
    assert sorted(o.key.decode() for o in again if o.resend) == sorted(PEOPLE)
    for request_id in PEOPLE:
        timeline = pipeline.ledger.timeline(request_id)
        assert sum(e.action == "completed" for e in timeline) == 1


def test_a_batch_is_completed_in_as_many_transactions_as_one_request(
    pipeline: Harness,
) -> None:
    [alone] = drive_together(pipeline, ["a-alone"])
    built = drive_together(pipeline, list(PEOPLE))
    with transactions(pipeline) as one:
        respond.conclude(pipeline, [alone])
    with transactions(pipeline) as batch:
        respond.conclude(pipeline, built)
    assert len(one) > 0 and len(batch) == len(one)


def test_a_response_refused_in_part_meanwhile_is_built_again(pipeline: Harness) -> None:
    [built] = drive_together(pipeline, ["a-taro"])
    stale = respond.Built(built.request_id, built.response, built.body, built.seen + 1)
    out = respond.conclude(pipeline, [stale])  # the ledger has fewer refused parts now
    [response] = to(topics.RESPONSES, out)
    assert json.loads(response.value)["request_id"] == "a-taro"
    [done] = [e for e in pipeline.ledger.timeline("a-taro") if e.action == "completed"]
    assert done.detail["status"] == "completed"


@pytest.mark.parametrize("kind", ["disclosure", "third_party_records", "purpose_notification"])
def test_a_result_that_leaves_every_system_running_would_plan_and_send_nothing(
    pipeline: Harness, kind: str
) -> None:
    """``step`` answers such a result without opening the request: planning it in full
    gives nothing either, at every such point of a request's waves. (The demo's erasure
    runs its systems one after another, so it has no such point; planning's own tests
    hold the case of a result that releases a system while others run.)"""
    request_id = f"running-{kind}"
    intake.handle_request(pipeline, json.dumps(event(request_id, kind, TARO)).encode())
    out: list[Outgoing] = fanout.handle_accepted(pipeline, request_id)
    skipped, responses = 0, []
    while results := run_tasks(pipeline, out):
        out = []
        for raw in results:  # one at a time: every point between results is looked at
            [progress] = aggregate.record(pipeline, [parse_result(pipeline, raw)])
            row, tasks = progress.read
            if row is not None and aggregate.still_running(pipeline, tasks):
                skipped += 1
                full = aggregate.planned_step(pipeline, row, tasks, resend=False, closing=False)
                assert full == []
            out += aggregate.advance(pipeline, request_id, read=progress.read)
        responses += to(topics.RESPONSES, out)
    assert skipped > 0
    [response] = responses
    assert json.loads(response.value)["status"] == "completed"


def test_a_request_is_still_running_when_every_system_has_its_action_and_one_runs(
    pipeline: Harness,
) -> None:
    systems = sorted(pipeline.datamap.systems)

    def row(system: str, status: str, *, lookup: bool = False) -> TaskRow:
        task_id = (
            Task.make_lookup_id("r", system, 0) if lookup else Task.make_id("r", system, "erasure")
        )
        return TaskRow(task_id=task_id, request_id="r", system=system, status=status)

    acting = [row(s, "pending" if s == systems[0] else "ok") for s in systems]
    assert aggregate.still_running(pipeline, acting)
    # a system with only its lookup may still be planned: the request is opened
    looked_up = [row(systems[0], "pending", lookup=True), *acting[1:]]
    assert not aggregate.still_running(pipeline, looked_up)
    assert not aggregate.still_running(pipeline, acting[1:])
    # nothing pending: the request is to be answered
    assert not aggregate.still_running(pipeline, [row(s, "ok") for s in systems])
