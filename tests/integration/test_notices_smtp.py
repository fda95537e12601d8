"""Notices through a real SMTP server (aiosmtpd on loopback) and the running worker.

Each delivery costs an SMTP server at least a round trip a command, and often a TLS
handshake. Sent one after another, notices would fall behind any steady stream of
requests; the worker sends a batch's notices side by side instead, each request's in
order, and each notice still once; a message that is not a notice is dead-lettered
without holding up the others."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.demo.scenario import TARO, event
from services.ledger import Ledger
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, wait_for
from tests.services.notify.fixtures import free_port

pytestmark = pytest.mark.integration

BY_EMAIL = {"method": "electronic", "address": TARO["email"]}
#: How long the server takes over each message (asynchronously: it can hold many).
DELIVERY_S = 1.0


class SlowServer:
    """An SMTP server's DATA handler that takes ``DELIVERY_S`` a message, and counts
    how many messages it was holding at once."""

    def __init__(self) -> None:
        self.holding = 0
        self.most_at_once = 0
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.holding += 1
        self.most_at_once = max(self.most_at_once, self.holding)
        try:
            await asyncio.sleep(DELIVERY_S)
        finally:
            self.holding -= 1
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def test_a_batch_of_notices_is_delivered_side_by_side_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SlowServer()
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("DSR_NOTIFIER", "smtp")
    monkeypatch.setenv("DSR_SMTP_URL", f"smtp://127.0.0.1:{controller.port}")
    settings = settings_for(tmp_path)
    ids = [f"smtp-{i}" for i in range(10)]
    ledger = Ledger(settings.database_url)
    try:
        with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
            submitter = stack.submitter()
            # not a notice message: dead-lettered, and the notices agent carries on
            submitter.producer.send(topics.NOTICES, key=b"smtp-0", value=b"{not json")
            submitter.submit_all(
                [
                    json.dumps(event(rid, "disclosure", TARO, delivery=BY_EMAIL)).encode()
                    for rid in ids
                ]
            )
            wait_for("every principal told", lambda: all(_told(ledger, r) for r in ids), 180)
            (poison,) = wait_for("the dead letter", lambda: ledger.dead_letters(topics.NOTICES))
        assert (poison.source, poison.request_id, poison.reason) == (
            "notices",
            "smtp-0",
            "invalid notice message",
        )
        assert server.most_at_once >= 2, "the notices were delivered one after another"
        delivered = sorted(str(m["X-DSR-Notice"]) for m in server.received)
        assert delivered == sorted(f"{rid}:response:1" for rid in ids)  # each once
        assert {str(m["To"]) for m in server.received} == {TARO["email"]}
        for rid in ids:
            (told,) = _told(ledger, rid)
            assert told.detail["channel"] == "smtp" and told.detail["addressed"] is True
    finally:
        controller.stop()
        ledger.close()


def _told(ledger: Ledger, request_id: str) -> list[Any]:
    """The request's ``notified`` audit rows."""
    return [e for e in ledger.timeline(request_id) if e.action == "notified"]
