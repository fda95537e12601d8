"""How a provision record is shown to the principal: every Art. 29 or Art. 30 item,
grouped by ``_source`` into ``provisions``, ``receipts`` and ``out_of_scope_flows``.

Flows that are not provision to a third party are never listed as provisions
(rule 16): they appear under ``out_of_scope_flows`` with a label and the reason
the APPI asks no record of them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from services.ledger import as_utc
from services.ledger.models import ProvisionRecord
from services.provisions.records import Direction, Flow, counterparty_key

OUT_OF_SCOPE: dict[Flow, tuple[str, str]] = {
    Flow.ENTRUSTMENT: (
        "委託 / Entrustment",
        "Art. 27(5)(i): handling entrusted to a contractor is not provision to a third "
        "party; no provision record is kept.",
    ),
    Flow.BUSINESS_SUCCESSION: (
        "事業の承継 / Business succession",
        "Art. 27(5)(ii): data passed on with a merger or other succession of the business "
        "is not provision to a third party; no provision record is kept.",
    ),
    Flow.JOINT_USE: (
        "共同利用 / Joint use",
        "Art. 27(5)(iii): data used jointly under a published joint-use arrangement is not "
        "provision to a third party; no provision record is kept.",
    ),
    Flow.STATUTORY_EXEMPTION: (
        "法令等に基づく提供 / Statutory exemption",
        "Art. 27(1): provision required by law, to protect life or property, for public "
        "health or to cooperate with state bodies needs no provision record.",
    ),
}


def present(row: ProvisionRecord, stopped: set[str]) -> dict[str, Any]:
    """One record as a JSON-ready dict; ``stopped`` holds the principal's stopped
    recipients, as ``counterparty_key`` folds them."""
    flow = Flow(row.flow)
    if flow is not Flow.THIRD_PARTY:
        label, reason = OUT_OF_SCOPE[flow]
        return {
            "_source": "out_of_scope_flows",
            "record_id": row.record_id,
            "flow": flow.value,
            "label": label,
            "reason": reason,
            "direction": row.direction,
            "counterparty": row.counterparty,
            "items": list(row.items),
            "date": _day(row.provided_on),
        }
    cross = row.cross_border or {}
    common = {
        "items": list(row.items),
        "basis": row.basis,
        "consent": row.consent,
        "cross_border_country": cross.get("country"),
        "cross_border_protection_system": cross.get("protection_system"),
        "cross_border_recipient_measures": cross.get("recipient_measures"),
        "record_form": row.form,
        "system": row.system,
        "recorded_at": _moment(row.recorded_at),
        "retain_until": _moment(row.retain_until),
    }
    if row.direction == Direction.RECEIPT:
        return {
            "_source": "receipts",
            "record_id": row.record_id,
            "received_on": _day(row.provided_on),
            "last_received_on": _day(row.last_provided_on),
            "provider": row.counterparty,
            "provider_address": row.counterparty_address,
            "provider_representative": row.counterparty_representative,
            "acquired_how": row.acquired_how,
            "ppc_publication": row.ppc_publication,
            **common,
        }
    return {
        "_source": "provisions",
        "record_id": row.record_id,
        "provided_on": _day(row.provided_on),
        "last_provided_on": _day(row.last_provided_on),
        "recipient": row.counterparty,
        "recipient_address": row.counterparty_address,
        "recipient_representative": row.counterparty_representative,
        **common,
        "stopped": counterparty_key(row.counterparty) in stopped,
    }


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _moment(value: datetime) -> str:
    return as_utc(value).isoformat()
