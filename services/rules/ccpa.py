"""California's CCPA as amended by the CPRA: 45 days, extendable once by 45 (§1798.130).

Opting out of sale or sharing (§1798.120) and limiting the use of sensitive personal
information (§1798.121) need no verification (regs §7026, §7027) and are due within 15
business days of receipt.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.rules.policy import Policy, after_business_days, after_days
from services.rules.sentence import Sentence
from streams.records import Kind

POLICY = Policy(
    regulation="ccpa",
    kinds=frozenset(Kind),
    fee_kinds=frozenset(),
    deadline=after_days(45),
    extension=after_days(45),
    # Regs §7021: the 45 days run from receipt, even while verifying.
    clock_pauses_for_verification=False,
    # Regs §7021(a): confirm receipt within 10 business days.
    acknowledge_within_business_days=10,
    refusal_codes={
        "identity_not_verified": Sentence(
            "§7060：ご請求を検証できなかったため", "§7060: the request could not be verified"
        ),
        "exempt": Sentence("§1798.145：適用除外に当たるため", "§1798.145: an exemption applies"),
    },
    # A consumer needs no reason: each right is its own ground.
    grounds={
        Kind.SUSPENSION: {
            "limit_sensitive_use": "§1798.121: limit the use of sensitive personal information"
        },
        Kind.ERASURE: {"consumer_request": "§1798.105: the consumer's request to delete"},
        Kind.THIRD_PARTY_STOP: {
            "opt_out_of_sale_or_sharing": "§1798.120: opt out of sale or sharing"
        },
    },
    unverified_kinds=frozenset({Kind.THIRD_PARTY_STOP, Kind.SUSPENSION}),
    kind_deadlines={
        Kind.THIRD_PARTY_STOP: after_business_days(15),
        Kind.SUSPENSION: after_business_days(15),
    },
    timezone=ZoneInfo("America/Los_Angeles"),
    remedy="カリフォルニア州プライバシー保護局に苦情を申し立てることができます。 / "
    "You may file a complaint with the California Privacy Protection Agency.",
)
