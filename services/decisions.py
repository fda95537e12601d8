"""An operator's decision (``dsr extend``, ``dsr refuse``): sent to ``dsr.decisions``, then
its outcome read back from the ledger, where the worker records it either way.

The decision's own audit row (``extended``, ``refused``) says it applied; a ``rejected``
row carrying the digest of the very bytes sent says it did not, and why. Rows written
before the decision was sent are never taken for its outcome.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from services.client import Submitter
from services.ledger import Ledger
from services.settings import Settings
from streams.records import DecisionEvent, dump
from streams.topics import DECISIONS

#: The audit action that records each kind of decision once applied.
APPLIED = {"extension": "extended", "refusal": "refused"}


def _applied(event: DecisionEvent) -> str:
    return "refused_in_part" if event.in_part else APPLIED[event.decision]


@dataclass(frozen=True)
class Outcome:
    """``applied``: the decision took effect. Else ``reason_code`` and ``errors`` say why
    not (the rejected topic's reason)."""

    applied: bool
    reason_code: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def decide(
    settings: Settings,
    bootstrap: str,
    event: DecisionEvent,
    timeout_s: float = 60.0,
    key_id: str | None = None,
) -> Outcome | None:
    """Send ``event``, signed with ``key_id`` (default: the producer key), and wait for
    the worker to record its outcome; None if it has not within ``timeout_s`` (no worker
    running, or one far behind)."""
    raw = dump(event)
    digest = hashlib.sha256(raw).hexdigest()
    ledger = Ledger(settings.database_url)
    try:
        seen = max((e.id for e in ledger.timeline(event.request_id)), default=0)
        submitter = Submitter.from_settings(settings, bootstrap, key_id)
        try:
            submitter.submit(raw, DECISIONS)
        finally:
            submitter.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for entry in ledger.timeline(event.request_id):
                if entry.id <= seen:
                    continue
                if entry.action == _applied(event):
                    return Outcome(True, detail=dict(entry.detail))
                if entry.action == "rejected" and entry.detail.get("raw_sha256") == digest:
                    code = entry.detail.get("reason_code")
                    return Outcome(False, code, ledger.rejected_errors(digest))
            time.sleep(0.2)
        return None
    finally:
        ledger.close()
