"""Japan's Act on the Protection of Personal Information (APPI), as amended in 2022."""

from __future__ import annotations

import os

from services.rules.policy import Policy, after_days
from streams.records import Kind

#: "Without delay" has no statutory number of days: an internal SLA, configurable.
SLA_DAYS = int(os.environ.get("DSR_APPI_SLA_DAYS", "14"))
#: Art. 39: a principal may sue two weeks after the request reached the business.
LITIGATION_RISK_DAYS = 14

POLICY = Policy(
    regulation="appi",
    kinds=frozenset(Kind),
    fee_kinds=frozenset({Kind.PURPOSE_NOTIFICATION, Kind.DISCLOSURE, Kind.THIRD_PARTY_RECORDS}),
    deadline=after_days(SLA_DAYS),
    extension=None,  # "without delay": the APPI has no extension
    clock_pauses_for_verification=False,
    refusal_codes={
        "harm_to_principal_or_third_party": "Art. 33(2)(i): risk of harm to the life, body, "
        "property or other rights and interests of the principal or a third party",
        "serious_interference_with_business": "Art. 33(2)(ii): serious interference with the "
        "proper conduct of the business",
        "violation_of_other_laws": "Art. 33(2)(iii): disclosure would violate other laws",
        "identity_not_verified": "The requester's identity could not be verified (Art. 37)",
    },
)
