"""The EU General Data Protection Regulation: one month, extendable by two (Art. 12(3))."""

from __future__ import annotations

from services.rules.policy import Policy, after_months
from services.rules.sentence import Sentence
from streams.records import Kind

#: Art. 17(1)(a)-(f).
_ERASURE_GROUNDS = {
    "no_longer_needed": "Art. 17(1)(a): no longer necessary for the purposes",
    "consent_withdrawn": "Art. 17(1)(b): consent withdrawn, and no other legal ground",
    "objection": "Art. 17(1)(c): objection under Art. 21, and no overriding grounds",
    "unlawful_processing": "Art. 17(1)(d): processed unlawfully",
    "legal_obligation": "Art. 17(1)(e): erasure is required by a legal obligation",
    "child_information_society": "Art. 17(1)(f): collected from a child for an information "
    "society service",
}
#: Art. 18(1)(a)-(d): restriction of processing.
_RESTRICTION_GROUNDS = {
    "accuracy_contested": "Art. 18(1)(a): the accuracy is contested, while it is verified",
    "unlawful_processing": "Art. 18(1)(b): processed unlawfully, and restriction is asked "
    "instead of erasure",
    "needed_for_legal_claims": "Art. 18(1)(c): no longer needed by the controller, but needed "
    "by the data subject for legal claims",
    "objection": "Art. 18(1)(d): objection under Art. 21, pending verification",
}
#: Art. 21 objection and Art. 7(3) withdrawal, applied to disclosure to third parties.
_STOP_GROUNDS = {
    "objection": "Art. 21(1): objection to processing",
    "direct_marketing_objection": "Art. 21(2): objection to processing for direct marketing",
    "consent_withdrawn": "Art. 7(3): consent withdrawn",
}

POLICY = Policy(
    regulation="gdpr",
    kinds=frozenset(Kind),
    fee_kinds=frozenset(),
    deadline=after_months(1),
    extension=after_months(2),
    clock_pauses_for_verification=True,
    refusal_codes={
        "manifestly_unfounded": Sentence(
            "GDPR第12条第5項：ご請求が明らかに根拠を欠くため",
            "Art. 12(5): the request is manifestly unfounded",
        ),
        "excessive": Sentence(
            "GDPR第12条第5項：ご請求が過剰である（特に繰り返しである）ため",
            "Art. 12(5): the request is excessive, in particular by repetition",
        ),
        "identity_not_verified": Sentence(
            "GDPR第12条第6項：ご本人であることを確認できなかったため",
            "Art. 12(6): the requester's identity could not be confirmed",
        ),
    },
    grounds={
        Kind.SUSPENSION: _RESTRICTION_GROUNDS,
        Kind.ERASURE: _ERASURE_GROUNDS,
        Kind.THIRD_PARTY_STOP: _STOP_GROUNDS,
    },
    remedy="監督機関への苦情申立て及び司法救済を求めることができます（GDPR第12条4項）。 / "
    "You may lodge a complaint with a supervisory authority and seek a judicial remedy "
    "(GDPR Art. 12(4)).",
)
