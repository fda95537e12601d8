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

from services.broker import free_port
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, wait_for

pytestmark = pytest.mark.integration

BY_EMAIL = {"method": "electronic", "address": TARO["email"]}


class GatedServer:
    """An SMTP server's DATA handler that holds each message until it holds two at once
    (then lets them all go), or until the test ``release``s the one it holds; it counts
    the most messages it held at once. A sender that waits for each message before the
    next never gets two held: each one waits for ``release``."""

    def __init__(self) -> None:
        self.held = 0
        self.most_at_once = 0
        self.received: list[Any] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._gate = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.held += 1
        self.most_at_once = max(self.most_at_once, self.held)
        if self.held >= 2:
            self._gate.set()
        await self._gate.wait()
        self.held -= 1
        if self.held == 0:  # the next message is held again
            self._gate = asyncio.Event()
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def release(self) -> None:
        """Let the messages held now go (from the test's thread)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._gate.set)


def test_a_batch_of_notices_is_delivered_side_by_side_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = GatedServer()
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    server.loop = controller.loop
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

            def told() -> bool:
                # Once every response is published, every notice is queued: a message
                # held alone then has no company coming in its batch, and is let go.
                if server.held == 1 and all(_published(ledger, r) for r in ids):
                    server.release()
                return all(_told(ledger, r) for r in ids)

            wait_for("every principal told", told, 180)
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


def _published(ledger: Ledger, request_id: str) -> bool:
    response = ledger.response(request_id)
    return response is not None and response.published_at is not None
