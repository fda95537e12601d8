"""The EU General Data Protection Regulation: one month, extendable by two (Art. 12(3))."""

from __future__ import annotations

from services.rules.policy import Policy, after_months
from streams.records import Kind

POLICY = Policy(
    regulation="gdpr",
    kinds=frozenset(Kind),
    fee_kinds=frozenset(),
    deadline=after_months(1),
    extension=after_months(2),
    clock_pauses_for_verification=True,
    refusal_codes={
        "manifestly_unfounded": "Art. 12(5): the request is manifestly unfounded",
        "excessive": "Art. 12(5): the request is excessive, in particular by repetition",
        "identity_not_verified": "Art. 12(6): the requester's identity could not be confirmed",
    },
)
