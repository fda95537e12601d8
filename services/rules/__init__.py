"""Legal rules: one policy per regulation, and the intake decision built on them.

``decide(event)`` says whether a request proceeds, is held (and why), or is
refused at the door. Every reason code is machine-readable and stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.rules import appi, ccpa, gdpr, reasons
from services.rules.policy import Policy, add_business_days
from streams.records import NoticePurpose, RequestEvent

POLICIES: dict[str, Policy] = {p.regulation: p for p in (appi.POLICY, gdpr.POLICY, ccpa.POLICY)}


@dataclass(frozen=True)
class Decision:
    action: Literal["proceed", "hold", "refuse"]
    reason_code: str | None = None
    message: str | None = None


def policy_for(regulation: str) -> Policy:
    return POLICIES[regulation]


def deadline(event: RequestEvent) -> datetime:
    return policy_for(event.regulation).deadline_for(event.kind, event.received_at)


def notices_owed(regulation: str, *, held: bool, extended: bool = False) -> list[NoticePurpose]:
    """What the principal of an open request is told before its response: that it
    arrived, where the regulation says so; that it is held; that its deadline moved."""
    owed: list[NoticePurpose] = []
    if policy_for(regulation).acknowledge_within_business_days is not None:
        owed.append("acknowledgement")
    if held:
        owed.append("hold")
    if extended:
        owed.append("extension")
    return owed


def acknowledgement_due(regulation: str, received_at: datetime) -> datetime | None:
    """When the principal must have been told the request arrived (CCPA regs § 7021(a):
    10 business days); None where the regulation asks for no acknowledgement."""
    days = policy_for(regulation).acknowledge_within_business_days
    return None if days is None else add_business_days(received_at, days)


def grounds_invoked(event: RequestEvent) -> dict[str, str | None]:
    """Each ground the request invokes, with the provision it rests on (None: not a ground
    the regulation knows for this kind)."""
    known = policy_for(event.regulation).grounds.get(event.kind, {})
    return {code: known.get(code) for code in event.grounds or []}


def accepted_grounds(event: RequestEvent) -> list[str]:
    return sorted(policy_for(event.regulation).grounds.get(event.kind, {}))


def litigation_risk_from(regulation: str, now: datetime) -> datetime | None:
    """Open requests received before this instant may already be taken to court
    (APPI Art. 39); None where the regulation has no such rule."""
    after = policy_for(regulation).litigation_risk_after
    return None if after is None else now - after


def decide(event: RequestEvent) -> Decision:
    """Refuse, hold or let a request proceed, in the order the checks must run."""
    policy = policy_for(event.regulation)
    # A right that needs no verification (CCPA opt-out) is answered as made.
    verifies = event.kind not in policy.unverified_kinds
    if verifies and event.verification.status == "failed":
        return Decision(
            "refuse", "identity_not_verified", policy.refusal_codes["identity_not_verified"].en
        )
    if verifies and event.verification.status != "verified":
        return _hold("verification_pending")
    if event.requester.type == "appointed_agent" and not event.requester.authority_reference:
        return _hold("agent_authority_missing")
    if event.requester.type == "statutory_agent" and not event.requester.authority_reference:
        return _hold("representation_proof_missing")
    if event.kind in policy.fee_kinds and event.fee.required and not event.fee.paid:
        return _hold("fee_unpaid")
    return Decision("proceed")


def _hold(code: str) -> Decision:
    return Decision("hold", code, reasons.hold(code).en)
