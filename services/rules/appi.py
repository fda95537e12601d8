"""Japan's Act on the Protection of Personal Information (APPI), as amended in 2022."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.rules.policy import Policy
from services.rules.sentence import Sentence
from services.settings import for_process
from streams.records import Kind

#: Japan Standard Time: Japan keeps no daylight saving time.
JST = timezone(timedelta(hours=9), "JST")
#: Art. 39: a principal may sue two weeks after the request reached the business.
LITIGATION_RISK_DAYS = 14

#: Art. 35(1): the grounds in force before the 2022 amendments (Arts. 18 and 20).
_USE_GROUNDS_BEFORE_2022 = {
    "used_beyond_purpose": "Art. 35(1): handled beyond the purposes of use (Art. 18)",
    "improperly_acquired": "Art. 35(1): acquired by deceit or other improper means (Art. 20)",
}
#: The grounds the 2022 amendments added (Art. 19, Art. 35(5)).
_GROUNDS_FROM_2022 = {
    "improper_use": "Art. 35(1): used in a way that may encourage unlawful acts (Art. 19)",
    "no_longer_needed": "Art. 35(5): no longer needed by the business",
    "reportable_breach": "Art. 35(5): a reportable leak or loss occurred (Art. 26(1))",
    "harm_to_rights": "Art. 35(5): handling is likely to harm the principal's rights or "
    "legitimate interests",
}
_STOP_GROUNDS_BEFORE_2022 = {
    "provided_without_consent": "Art. 35(3): provided to a third party without consent "
    "(Art. 27(1))",
    "cross_border_without_consent": "Art. 35(3): provided to a foreign third party without "
    "consent (Art. 28)",
}
_USE_GROUNDS = {**_USE_GROUNDS_BEFORE_2022, **_GROUNDS_FROM_2022}
_STOP_GROUNDS = {
    **_STOP_GROUNDS_BEFORE_2022,
    **{k: v for k, v in _GROUNDS_FROM_2022.items() if k != "improper_use"},
}


def _within_sla(received: datetime) -> datetime:
    """ "Without delay" has no statutory number of days: an internal SLA
    (``DSR_APPI_SLA_DAYS``)."""
    return received + timedelta(days=for_process().appi_sla_days)


POLICY = Policy(
    regulation="appi",
    kinds=frozenset(Kind),
    fee_kinds=frozenset({Kind.PURPOSE_NOTIFICATION, Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS}),
    deadline=_within_sla,
    extension=None,  # "without delay": the APPI has no extension
    clock_pauses_for_verification=False,
    refusal_codes={
        "harm_to_principal_or_third_party": Sentence(
            "法第33条第2項第1号：本人又は第三者の生命、身体、財産その他の権利利益を"
            "害するおそれがあるため",
            "Art. 33(2)(i): risk of harm to the life, body, property or other rights and "
            "interests of the principal or a third party",
        ),
        "serious_interference_with_business": Sentence(
            "法第33条第2項第2号：当社の業務の適正な実施に著しい支障を及ぼすおそれがあるため",
            "Art. 33(2)(ii): serious interference with the proper conduct of the business",
        ),
        "violation_of_other_laws": Sentence(
            "法第33条第2項第3号：他の法令に違反することとなるため",
            "Art. 33(2)(iii): disclosure would violate other laws",
        ),
        "identity_not_verified": Sentence(
            "ご本人であることを確認できなかったため（法第37条）",
            "The requester's identity could not be verified (Art. 37)",
        ),
        "no_grounds": Sentence(
            "法第35条：ご請求の理由のいずれも、当社が保有する個人データに当たらないため",
            "Art. 35: none of the grounds invoked applies to the data held",
        ),
        "costly_with_alternative": Sentence(
            "法第35条第2項、第4項、第6項：多額の費用を要するなど対応が困難であり、"
            "ご本人の権利利益を保護するために必要な代わりの措置をとるため",
            "Art. 35(2), (4), (6): complying would be very costly or difficult, and an "
            "alternative measure protects the principal's rights",
        ),
    },
    grounds={
        Kind.SUSPENSION: _USE_GROUNDS,
        Kind.ERASURE: _USE_GROUNDS,
        Kind.THIRD_PARTY_STOP: _STOP_GROUNDS,
    },
    litigation_risk_after=timedelta(days=LITIGATION_RISK_DAYS),
    timezone=JST,
    remedy="個人情報保護委員会にご相談いただくこともできます。 / "
    "You may also consult the Personal Information Protection Commission.",
)
