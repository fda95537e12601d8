"""What a regulation's policy is made of: data plus a few small functions.

A new regulation is one new module beside ``appi.py`` that builds a ``Policy``
and is listed in ``services.rules.POLICIES``.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from services.rules.sentence import Sentence
from streams.records import Kind


def add_months(start: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def add_business_days(start: datetime, days: int) -> datetime:
    """``days`` business days (Monday to Friday) after ``start``, at the same time of day.

    Public holidays are not counted out: a deadline computed here is never later than
    the statutory one."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def after_days(days: int) -> Callable[[datetime], datetime]:
    return lambda start: start + timedelta(days=days)


def after_business_days(days: int) -> Callable[[datetime], datetime]:
    return lambda start: add_business_days(start, days)


def after_months(months: int) -> Callable[[datetime], datetime]:
    return lambda start: add_months(start, months)


@dataclass(frozen=True)
class Policy:
    regulation: str
    kinds: frozenset[Kind]
    #: Kinds for which the business may charge, and which wait for payment.
    fee_kinds: frozenset[Kind]
    #: The deadline, from the day the request reached the business.
    deadline: Callable[[datetime], datetime]
    #: How far the one extension allowed moves the deadline, from the original deadline;
    #: None where the regulation allows none.
    extension: Callable[[datetime], datetime] | None
    #: Whether the clock stops while identity verification is pending.
    clock_pauses_for_verification: bool
    #: The grounds on which the business may refuse: code -> its legal text (ja / en).
    refusal_codes: dict[str, Sentence] = field(default_factory=dict)
    #: Business days within which receipt of a request must be acknowledged; None where
    #: the regulation asks for no acknowledgement.
    acknowledge_within_business_days: int | None = None
    #: The grounds a principal may invoke, per kind that needs one (suspension, erasure,
    #: third_party_stop): code -> the provision it rests on. A request invoking none of
    #: them is rejected at intake, so a typo never becomes a refusal.
    grounds: dict[Kind, dict[str, str]] = field(default_factory=dict)
    #: An open request this old may be taken to court (APPI Art. 39); None where no such
    #: rule exists.
    litigation_risk_after: timedelta | None = None
    #: Where else the principal may turn, told in every notice and letter (ja / en).
    remedy: str = ""
    #: Kinds answered without verifying identity (CCPA opt-out and limit-use): never held
    #: for verification, whatever ``verification.status`` says.
    unverified_kinds: frozenset[Kind] = frozenset()
    #: The time zone of the dates the principal is told (JST for the APPI).
    timezone: tzinfo = UTC
    #: Kinds with a deadline of their own, from receipt, instead of ``deadline``.
    kind_deadlines: dict[Kind, Callable[[datetime], datetime]] = field(default_factory=dict)

    def deadline_for(self, kind: Kind, received_at: datetime) -> datetime:
        return self.kind_deadlines.get(kind, self.deadline)(received_at)
