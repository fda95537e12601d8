"""Business days: Monday to Friday (the CCPA's acknowledgement period)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rules.policy import add_business_days


def test_business_days_skip_weekends() -> None:
    monday = datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert add_business_days(monday, 0) == monday
    assert add_business_days(monday, 4) == datetime(2026, 12, 4, 9, tzinfo=UTC)  # Friday
    assert add_business_days(monday, 5) == datetime(2026, 12, 7, 9, tzinfo=UTC)  # Monday
    assert add_business_days(monday, 10) == datetime(2026, 12, 14, 9, tzinfo=UTC)


def test_a_weekend_start_counts_from_the_next_business_day() -> None:
    saturday = datetime(2026, 12, 5, 18, tzinfo=UTC)
    assert add_business_days(saturday, 1) == datetime(2026, 12, 7, 18, tzinfo=UTC)
    assert add_business_days(saturday, 10) == datetime(2026, 12, 18, 18, tzinfo=UTC)
