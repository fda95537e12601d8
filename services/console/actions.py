"""What an operator does from the console, each signed with the operator's own key.

- ``release``: the held request is sent again with the evidence the operator confirms
  (identity verified, fee paid, an agent's authority), as intake allows a held request's
  re-send to change only that evidence;
- ``refuse`` (whole or in part) and ``extend``: decision events (``services.decisions``).

Each waits until the worker has recorded what became of it, and says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from services.client import Submitter
from services.decisions import decide
from services.ledger import Ledger, RequestStatus
from services.settings import Settings
from streams.records import DecisionEvent, RequestEvent

WAIT_S = 30.0


@dataclass(frozen=True)
class Done:
    ok: bool
    message: str


def release(
    settings: Settings,
    bootstrap: str,
    ledger: Ledger,
    request_id: str,
    key_id: str,
    evidence: dict[str, str],
) -> Done:
    """Send the held request again with ``evidence`` (``method`` and ``reference`` of the
    identity check, ``payment_reference`` of the fee, ``authority_reference``)."""
    row = ledger.request(request_id)
    if row is None or row.status != RequestStatus.HELD:
        return Done(False, f"{request_id} is not held")
    event = ledger.request_event(row)
    released = _with_evidence(event, row.hold_reason or "", evidence)
    seen = max((e.id for e in ledger.timeline(request_id)), default=0)
    submitter = Submitter.from_settings(settings, bootstrap, key_id)
    try:
        submitter.submit(json.dumps(released, ensure_ascii=False).encode())
    finally:
        submitter.close()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for entry in ledger.timeline(request_id):
            if entry.id <= seen:
                continue
            if entry.action == "released":
                return Done(True, f"{request_id} released")
            if entry.action in ("hold", "still_held"):
                return Done(True, f"{request_id} still held: {entry.detail.get('reason_code')}")
            if entry.action == "rejected":
                why = entry.detail.get("reason_code") or entry.action
                return Done(False, f"{request_id} not released: {why}")
        time.sleep(0.2)
    return Done(False, f"{request_id}: sent, but no worker recorded it within {WAIT_S:g} s")


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


def decision(settings: Settings, bootstrap: str, event: DecisionEvent, key_id: str) -> Done:
    """Send a refusal or extension signed with ``key_id`` and report its outcome."""
    outcome = decide(settings, bootstrap, event, WAIT_S, key_id)
    if outcome is None:
        return Done(False, f"sent, but no worker recorded it within {WAIT_S:g} s")
    if not outcome.applied:
        why = "; ".join(e.get("msg", "") for e in outcome.errors) or outcome.reason_code
        return Done(False, f"rejected ({outcome.reason_code}): {why}")
    part = " in part" if event.in_part else ""
    verb = "extended" if event.decision == "extension" else f"refused{part}"
    return Done(True, f"{event.request_id} {verb}")
