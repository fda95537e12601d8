"""How long a provision record is kept (the APPI Enforcement Rules).

- ``contract_substitute``: a contract or similar document for goods or services
  provided to the principal stands in for the record; kept 1 year after the last
  provision it covers.
- ``continuous``: one combined record of continuous or repeated provision; kept
  3 years after the last provision it covers.
- ``per_provision``: every other record; kept 3 years from when it was made.

Each record's ``retain_until`` is computed once, when it is stored, so a purge
is one indexed comparison and a change of these rules is a migration, not a
silent reinterpretation of old rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from services.provisions.records import RecordForm

YEARS: dict[RecordForm, int] = {
    RecordForm.CONTRACT_SUBSTITUTE: 1,
    RecordForm.CONTINUOUS: 3,
    RecordForm.PER_PROVISION: 3,
}


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def retain_until(form: RecordForm, recorded_at: datetime, last_provision: date) -> datetime:
    """The end of a record's retention: from the last provision for the two combined
    forms, from when the record was made otherwise."""
    if form is RecordForm.PER_PROVISION:
        start = recorded_at.astimezone(UTC)
    else:
        start = datetime.combine(last_provision, time.min, tzinfo=UTC)
    return add_years(start, YEARS[form])
