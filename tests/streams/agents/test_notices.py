"""The notices agent: each notice is built from the ledger, sent once and audited."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from pathlib import Path

import pytest

from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.notify import Notice, OutboxNotifier, Receipt
from streams import parking, topics
from streams.agents import aggregate, fanout, intake, notices, respond
from streams.context import Outgoing, Pipeline
from tests.streams.agents.fixtures import run_tasks, to, transactions

CONTACT = "privacy@example.co.jp"


def deliver(p: Pipeline, outbox: OutboxNotifier, out: list[Outgoing]) -> None:
    for o in to(topics.NOTICES, out):
        asyncio.run(notices.handle_notice(p, outbox, o.value, CONTACT))


def notified(p: Pipeline, request_id: str) -> list[str]:
    return [e.detail["notice_id"] for e in p.ledger.timeline(request_id) if e.action == "notified"]


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxNotifier:
    return OutboxNotifier(tmp_path / "outbox", sender="privacy@example.co.jp")


def test_a_response_notice_is_sent_once_however_often_it_is_due(
    pipeline: Pipeline, outbox: OutboxNotifier
) -> None:
    raw = json.dumps(event("o-1", "disclosure", TARO)).encode()
    assert to(topics.ACCEPTED, intake.handle_request(pipeline, raw))
    out = fanout.handle_accepted(pipeline, "o-1")
    sent: list[Outgoing] = []
    while results := run_tasks(pipeline, out):
        out = [o for r in results for o in aggregate.handle_result(pipeline, r)]
        sent += out
    assert to(topics.NOTICES, sent) == [notices.due("o-1", "response")]
    # the response is re-sent before it is marked published: so is its notice
    again = respond.finish(pipeline, "o-1")
    assert to(topics.NOTICES, again) == [notices.due("o-1", "response")]
    deliver(pipeline, outbox, sent + again)
    assert notified(pipeline, "o-1") == ["o-1:response:1"]
    assert [p.name for p in (outbox.directory / "o-1").iterdir()] == ["o-1:response:1.eml"]
    [audit] = [e for e in pipeline.ledger.timeline("o-1") if e.action == "notified"]
    assert audit.actor == "notifier"
    assert audit.detail == {
        "notice_id": "o-1:response:1",
        "purpose": "response",
        "revision": 1,
        "channel": "outbox",
        "addressed": False,
        "status": "completed",
        "reason_codes": "",
    }


def test_a_send_not_yet_audited_is_repeated_once_and_recognisable(
    pipeline: Pipeline, outbox: OutboxNotifier
) -> None:
    """A crash between sending and auditing: the redelivered message sends again, with
    the same id; the outbox keeps one copy."""
    out = intake.handle_request(
        pipeline, json.dumps(event("c-1", "disclosure", TARO, regulation="ccpa")).encode()
    )
    [due] = to(topics.NOTICES, out)
    notice = notices.prepare(pipeline, due.value, CONTACT)
    assert notice is not None
    outbox.send(notice)  # ... and the worker dies here
    deliver(pipeline, outbox, [due, due])
    assert notified(pipeline, "c-1") == ["c-1:acknowledgement:1"]
    assert len(list((outbox.directory / "c-1").iterdir())) == 1


def test_only_the_latest_hold_is_told_and_none_once_released(
    pipeline: Pipeline, outbox: OutboxNotifier
) -> None:
    unpaid = event("h-1", "disclosure", TARO, fee={"required": True, "paid": False})
    pending = {**unpaid, "verification": {"status": "pending"}}
    first = intake.handle_request(pipeline, json.dumps(pending).encode())
    second = intake.handle_request(pipeline, json.dumps(unpaid).encode())
    deliver(pipeline, outbox, first + second)
    assert notified(pipeline, "h-1") == ["h-1:hold:2"]
    redelivered = intake.handle_request(pipeline, json.dumps(unpaid).encode())
    deliver(pipeline, outbox, redelivered)
    assert notified(pipeline, "h-1") == ["h-1:hold:2"]
    released = intake.handle_request(
        pipeline, json.dumps(event("h-2", "disclosure", TARO)).encode()
    )
    unpaid = event("h-3", "disclosure", TARO, fee={"required": True})
    held_then_released = intake.handle_request(pipeline, json.dumps(unpaid).encode())
    paid = {**unpaid, "fee": {"required": True, "paid": True}}
    assert to(topics.ACCEPTED, intake.handle_request(pipeline, json.dumps(paid).encode()))
    deliver(pipeline, outbox, released + held_then_released)
    assert notified(pipeline, "h-2") == notified(pipeline, "h-3") == []


def test_a_malformed_notice_message_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(notices.InvalidNotice) as refused:
        notices.prepare(pipeline, b"{}", CONTACT)
    assert not parking.parks(refused.value)  # the message's fault, not its request's
    with pytest.raises(notices.InvalidNotice):
        notices.prepare(pipeline, b'{"request_id": "x", "purpose": "gossip"}', CONTACT)
    assert notices.prepare(pipeline, notices.due("nobody", "response").value, CONTACT) is None


PEOPLE = {"n-taro": TARO, "n-jiro": JIRO, "n-hanako": HANAKO}


def acknowledgement_due(p: Pipeline, request_id: str, who: dict[str, str]) -> bytes:
    """A CCPA request admitted: the acknowledgement it is owed, addressed to ``who``."""
    body = event(request_id, "disclosure", who, regulation="ccpa")
    body["delivery"] = {"method": "electronic", "address": who["email"]}
    [due] = to(topics.NOTICES, intake.handle_request(p, json.dumps(body).encode()))
    return due.value


def test_a_batch_tells_each_principal_only_their_own_notice_once(
    pipeline: Pipeline, outbox: OutboxNotifier
) -> None:
    dues = [acknowledgement_due(pipeline, rid, who) for rid, who in PEOPLE.items()]
    asyncio.run(notices.handle_notices(pipeline, outbox, dues + dues[::-1], CONTACT))
    for request_id, who in PEOPLE.items():
        assert notified(pipeline, request_id) == [f"{request_id}:acknowledgement:1"]
        [kept] = (outbox.directory / request_id).iterdir()
        message = message_from_bytes(kept.read_bytes())
        assert message["To"] == who["email"]  # look-alikes side by side: nobody else's
        others = [rid for rid in PEOPLE if rid != request_id]
        assert not any(other in kept.read_text() for other in others)
    # delivered again, as after a crash before the offsets were committed: nothing new
    asyncio.run(notices.handle_notices(pipeline, outbox, dues, CONTACT))
    assert all(len(notified(pipeline, rid)) == 1 for rid in PEOPLE)


def test_a_batch_reads_and_audits_the_ledger_as_one_notice_does(
    pipeline: Pipeline, outbox: OutboxNotifier
) -> None:
    alone = acknowledgement_due(pipeline, "n-alone", TARO)
    dues = [acknowledgement_due(pipeline, rid, who) for rid, who in PEOPLE.items()]
    with transactions(pipeline) as one:
        asyncio.run(notices.handle_notices(pipeline, outbox, [alone], CONTACT))
    with transactions(pipeline) as batch:
        asyncio.run(notices.handle_notices(pipeline, outbox, dues, CONTACT))
    assert len(one) == 2  # one read of one moment, and the audit rows written
    assert len(batch) == len(one)
    assert all(notified(pipeline, rid) for rid in [*PEOPLE, "n-alone"])


class FailingFor(OutboxNotifier):
    """An outbox that cannot send to one request's principal."""

    refused = "n-jiro"

    def send(self, notice: Notice) -> Receipt:
        if notice.request_id == self.refused:
            raise ConnectionRefusedError("the mail server refused the connection")
        return super().send(notice)


def test_a_notice_that_cannot_be_sent_fails_after_the_others_are_audited(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    failing = FailingFor(tmp_path / "failing", sender="privacy@example.co.jp")
    dues = [acknowledgement_due(pipeline, rid, who) for rid, who in PEOPLE.items()]
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(notices.handle_notices(pipeline, failing, dues, CONTACT))
    assert notified(pipeline, "n-jiro") == []
    assert notified(pipeline, "n-taro") == ["n-taro:acknowledgement:1"]
    assert notified(pipeline, "n-hanako") == ["n-hanako:acknowledgement:1"]
    # handled again, the sent ones are not sent twice
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(notices.handle_notices(pipeline, failing, dues, CONTACT))
    assert sorted(p.name for p in failing.directory.iterdir()) == ["n-hanako", "n-taro"]
    assert len(notified(pipeline, "n-taro")) == 1
