"""Retention per record form (APPI Enforcement Rules), counted as APPI.md sets out."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.provisions.records import RecordForm
from services.provisions.retention import add_years, retain_until

MADE = datetime(2026, 5, 10, 12, 30, tzinfo=UTC)
LAST = date(2026, 9, 1)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        # 3 years from when the record was made
        (RecordForm.PER_PROVISION, datetime(2029, 5, 10, 12, 30, tzinfo=UTC)),
        # a contract stands in for the record: 1 year after the last provision
        (RecordForm.CONTRACT_SUBSTITUTE, datetime(2027, 9, 1, tzinfo=UTC)),
        # one combined record of continuous provision: 3 years after the last provision
        (RecordForm.CONTINUOUS, datetime(2029, 9, 1, tzinfo=UTC)),
    ],
)
def test_retention_is_computed_per_form(form: RecordForm, expected: datetime) -> None:
    assert retain_until(form, MADE, LAST) == expected


def test_a_record_made_in_another_zone_is_counted_in_utc() -> None:
    made = datetime.fromisoformat("2026-01-01T08:00:00+09:00")
    until = retain_until(RecordForm.PER_PROVISION, made, LAST)
    assert until == datetime(2028, 12, 31, 23, 0, tzinfo=UTC)


def test_29_february_rolls_to_28_february() -> None:
    assert add_years(datetime(2028, 2, 29, tzinfo=UTC), 1) == datetime(2029, 2, 28, tzinfo=UTC)
