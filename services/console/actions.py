"""What an operator does from the console, each signed with the operator's own key.

- ``release``: the held request is sent again with the evidence the operator confirms
  (identity verified, fee paid, an agent's authority), as intake allows a held request's
  re-send to change only that evidence;
- ``refuse`` (whole or in part) and ``extend``: decision events (``services.decisions``).

Each waits until the worker has recorded what became of it, and says so.
"""

from __future__ import annotations

from dataclasses import replace

from services import decisions
from services.decisions import Outcome
from services.ledger import Ledger
from services.settings import Settings
from streams.records import DecisionEvent

WAIT_S = 30.0


def release(
    settings: Settings,
    bootstrap: str,
    ledger: Ledger,
    request_id: str,
    key_id: str,
    evidence: dict[str, str],
) -> Outcome:
    """Send the held request again with ``evidence`` and report what became of it."""
    return decisions.release(settings, bootstrap, ledger, request_id, evidence, key_id)


def decision(settings: Settings, bootstrap: str, event: DecisionEvent, key_id: str) -> Outcome:
    """Send a refusal or extension signed with ``key_id`` and report its outcome, with a
    ``message`` for the operator."""
    outcome = decisions.decide(settings, bootstrap, event, WAIT_S, key_id)
    if outcome is None:
        return Outcome(False, message=f"sent, but no worker recorded it within {WAIT_S:g} s")
    if not outcome.applied:
        why = "; ".join(e.get("msg", "") for e in outcome.errors) or outcome.reason_code
        return replace(outcome, message=f"rejected ({outcome.reason_code}): {why}")
    part = " in part" if event.in_part else ""
    verb = "extended" if event.decision == "extension" else f"refused{part}"
    return replace(outcome, message=f"{event.request_id} {verb}")
