"""An operator's decision (``dsr extend``, ``dsr refuse``): sent to ``dsr.decisions``, then
its outcome read back from the ledger, where the worker records it either way; and a
release (``dsr release``): the held request sent again with the evidence it waited for.

The decision's own audit row (``extended``, ``refused``) says it applied; a ``rejected``
row carrying the digest of the very bytes sent says it did not, and why. Rows written
before the decision was sent are never taken for its outcome.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from services.client import Submitter
from services.ledger import Action, Ledger, RequestStatus
from services.settings import Settings
from streams import topics
from streams.records import DecisionEvent, RequestEvent, dump

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
    message: str = ""


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
    with Ledger(settings.database_url) as ledger:
        seen = max((e.id for e in ledger.timeline(event.request_id)), default=0)
        submitter = Submitter.from_settings(settings, bootstrap, key_id)
        try:
            submitter.submit(raw, topics.DECISIONS)
        finally:
            submitter.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for entry in ledger.timeline(event.request_id):
                if entry.id <= seen:
                    continue
                if entry.action == _applied(event):
                    return Outcome(True, detail=dict(entry.detail))
                if entry.action == Action.REJECTED and entry.detail.get("raw_sha256") == digest:
                    code = entry.detail.get("reason_code")
                    return Outcome(False, code, ledger.rejected_errors(digest))
            time.sleep(0.2)
        return None


def release(
    settings: Settings,
    bootstrap: str,
    ledger: Ledger,
    request_id: str,
    evidence: dict[str, str],
    key_id: str | None = None,
    timeout_s: float = 30.0,
) -> Outcome:
    """Send the held request again, signed with ``key_id``, with ``evidence``: the
    identity check's ``method`` and ``reference``, the fee's ``payment_reference``, or an
    agent's ``authority_reference``, for what it is held for. Waits for intake to record
    the release (or a further hold, or a rejection)."""
    row = ledger.request(request_id)
    if row is None or row.status != RequestStatus.HELD:
        return Outcome(False, "not_held", message=f"{request_id} is not held")
    released = _with_evidence(ledger.request_event(row), row.hold_reason or "", evidence)
    seen = max((e.id for e in ledger.timeline(request_id)), default=0)
    submitter = Submitter.from_settings(settings, bootstrap, key_id)
    try:
        submitter.submit(json.dumps(released, ensure_ascii=False).encode())
    finally:
        submitter.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in ledger.timeline(request_id):
            if entry.id <= seen:
                continue
            code = entry.detail.get("reason_code")
            if entry.action == Action.RELEASED:
                return Outcome(True, detail=dict(entry.detail), message=f"{request_id} released")
            if entry.action in (Action.HOLD, Action.STILL_HELD):
                return Outcome(True, code, message=f"{request_id} still held: {code}")
            if entry.action == Action.REJECTED:
                return Outcome(False, code, message=f"{request_id} not released: {code}")
        time.sleep(0.2)
    return Outcome(
        False, message=f"{request_id}: sent, but no worker recorded it within {timeout_s:g} s"
    )


def _with_evidence(event: RequestEvent, reason: str, evidence: dict[str, str]) -> dict[str, Any]:
    body = event.model_dump(mode="json", exclude_none=True)
    if reason == "verification_pending":
        body["verification"] = {
            **body.get("verification", {}),
            "status": "verified",
            **{k: evidence[k] for k in ("method", "reference") if evidence.get(k)},
        }
    elif reason == "fee_unpaid":
        body["fee"] = {**body.get("fee", {}), "paid": True}
        if evidence.get("payment_reference"):
            body["fee"]["payment_reference"] = evidence["payment_reference"]
    elif reason in ("agent_authority_missing", "representation_proof_missing"):
        body["requester"] = {
            **body.get("requester", {}),
            "authority_reference": evidence.get("authority_reference") or "",
        }
    return body
