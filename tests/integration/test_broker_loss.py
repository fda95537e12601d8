"""The broker restarts empty in the middle of a run: nothing admitted is lost."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from services import heartbeat
from services.client import read_all
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.ledger import Ledger, as_utc
from streams import topics
from streams.agents import intake
from streams.context import Pipeline
from tests.fixtures.ledger_reads import count_by_status
from tests.integration.fixtures import (
    joined_stack,
    settings_for,
    told,
    wait_for,
    wait_sent,
    wait_supervised,
    with_crm,
)

pytestmark = pytest.mark.integration

N = 24


def test_an_empty_broker_restart_loses_no_admitted_request(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    subjects = [TARO, HANAKO, JIRO]
    requests = [
        json.dumps(event(f"loss-{i}", "disclosure", subjects[i % 3])).encode() for i in range(N)
    ]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        stack.kill("runner-0")  # so the tasks are still on the broker when it goes
        submitter = stack.submitter()
        submitter.submit_all(requests)
        submitter.close()
        wait_for("every request fanned out", lambda: count_by_status(ledger) == {"fanned_out": N})

        assert stack.restart_broker() == N  # every task and event in flight is gone
        stack.spawn("runner-0")
        wait_supervised(
            "every request completed", stack, lambda: count_by_status(ledger) == {"completed": N}
        )
    for i in range(N):
        actions = [e.action for e in ledger.timeline(f"loss-{i}")]
        assert actions.count("completed") == 1, (i, actions)
    ledger.close()


def test_the_responses_an_empty_broker_restart_lost_are_sent_again(tmp_path: Path) -> None:
    """A client that had not read them yet finds them on the restarted broker: each once."""
    settings = settings_for(tmp_path)
    ids = [f"sent-{i}" for i in range(6)]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        submitter = stack.submitter()
        submitter.submit_all(
            [
                json.dumps(event(rid, "disclosure", [TARO, HANAKO][i % 2])).encode()
                for i, rid in enumerate(ids)
            ]
        )
        submitter.close()
        wait_sent(ledger, ids, timeout=120)

        stack.restart_broker()
        for name in stack.check_alive():
            stack.spawn(name)
        wait_sent(ledger, ids)  # sent again, and acknowledged by the new broker
        on_topic = [json.loads(r.value) for r in read_all(stack.bootstrap, [topics.RESPONSES])]
    sent = Counter(b["request_id"] for b in on_topic)
    assert {rid: sent[rid] for rid in ids} == dict.fromkeys(ids, 1)
    for rid in ids:
        actions = [e.action for e in ledger.timeline(rid)]
        assert actions.count("completed") == 1, (rid, actions)
    ledger.close()


def test_the_notices_an_empty_broker_restart_lost_are_sent_once(tmp_path: Path) -> None:
    """Requests admitted while their notices were still on the broker when it went: once
    it is back, each principal is told, once; a notice sent before the loss is not sent
    again."""
    settings = settings_for(tmp_path)
    ledger = Ledger(settings.database_url)
    unpaid = {"required": True, "amount_jpy": 1000}
    lost = [
        event("ccpa-lost", "disclosure", HANAKO, regulation="ccpa"),
        event("fee-lost", "disclosure", JIRO, fee=unpaid),
    ]
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        submitter = stack.submitter()
        submitter.submit_all(
            [json.dumps(event("ccpa-told", "disclosure", TARO, regulation="ccpa")).encode()]
        )
        wait_for("the first acknowledgement", lambda: told(ledger, "ccpa-told"))
        stack.kill("worker-0")  # what intake sends from here on is not read before the loss
        ctx = Pipeline.from_settings(settings)
        for body in lost:  # admitted as the worker admits them; what it sends is lost
            raw = json.dumps(body).encode()
            raw = submitter.sealer.seal_request(raw) if submitter.sealer else raw
            headers = submitter.signer.headers(raw) if submitter.signer else []
            owed = intake.handle_request(ctx, raw, headers)
            assert [o.topic for o in owed].count(topics.NOTICES) == 1
        ctx.close()
        submitter.close()

        stack.restart_broker()
        stack.spawn("worker-0")
        wait_for(
            "the lost notices",
            lambda: (
                told(ledger, "ccpa-lost") == ["acknowledgement"]
                and told(ledger, "fee-lost") == ["hold"]
            ),
        )
        wait_sent(ledger, ["ccpa-told", "ccpa-lost"])
        wait_for(
            "the responses' notices",
            lambda: all("response" in told(ledger, r) for r in ("ccpa-told", "ccpa-lost")),
        )
    assert sorted(told(ledger, "ccpa-told")) == ["acknowledgement", "response"]
    assert sorted(told(ledger, "ccpa-lost")) == ["acknowledgement", "response"]
    assert told(ledger, "fee-lost") == ["hold"]  # still held: nothing else is owed
    for rid, purposes in [("ccpa-told", 2), ("ccpa-lost", 2), ("fee-lost", 1)]:
        assert len(list((tmp_path / "outbox" / rid).glob("*.eml"))) == purposes, rid
    ledger.close()


def test_nothing_is_timed_out_while_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    """The broker frozen (SIGSTOP) with requests open until past their timeout: results
    sent in time could be waiting on it, so the worker, whose consumer last heard the
    partitions' ends before the freeze, times nothing out until it reads them again.
    (The runner is away, so no result comes at all: once the broker is back, the tasks
    are stale, and the requests are timed out then, each answered once, as failed.)"""
    settings = settings_for(tmp_path, with_crm("", timeout_s=3))
    ids = [f"frozen-{i}" for i in range(6)]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        stack.kill("runner-0")
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(event(i, "disclosure", TARO)).encode() for i in ids])
        wait_for("the fan-out", lambda: count_by_status(ledger) == {"fanned_out": len(ids)})
        broker = stack.pid("broker")
        assert broker is not None
        os.kill(broker, signal.SIGSTOP)
        try:
            rows = [ledger.request(i) for i in ids]
            last = max(as_utc(r.timeout_at).timestamp() for r in rows if r and r.timeout_at)
            # the worker's loop has gone on past every deadline, its time-outs with it
            wait_for(
                "the worker to beat past the deadlines",
                lambda: (
                    (beat := heartbeat.read(settings.home).get("worker-0")) and beat.at > last + 3
                ),
            )
            timed_out = [
                e for i in ids for e in ledger.timeline(i) if e.action == "tasks_timed_out"
            ]
            assert timed_out == []
            assert count_by_status(ledger) == {"fanned_out": len(ids)}
        finally:
            os.kill(broker, signal.SIGCONT)
        stack.spawn("runner-0")
        wait_for("every answer", lambda: all(_answered(ledger, i) for i in ids))
        submitter.close()
    for i in ids:
        assert [e.action for e in ledger.timeline(i)].count("completed") == 1
    ledger.close()


def _answered(ledger: Ledger, request_id: str) -> bool:
    row = ledger.request(request_id)
    return row is not None and row.completed_at is not None
