"""The kit's tests of reading: check, disclosure, unknown subjects, provision records."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.dispatch import check
from connectors.errors import ConnectorError, NotSupported
from connectors.results import CheckResult
from connectors.testing.calls import ORDER, attempt, check_records, fail, invoke, label, run
from connectors.testing.compare import leaks
from connectors.testing.session import Session
from streams.records import Kind

Record = dict[str, Any]


class ReadTests:
    def test_check_is_ok(self, kit: Session) -> None:
        result = attempt("connector.check()", check, kit.connector)
        if not isinstance(result, CheckResult):
            fail(f"check() returned {type(result).__name__}, not a CheckResult")
        if not result.ok:
            fail(f"check() failed on the live test system: {result.message}")

    def test_disclose_returns_the_subject_and_nobody_else(self, kit: Session) -> None:
        kit.require(Kind.DISCLOSURE)
        s = kit.seeded
        mine, theirs = _records_of_both(kit, Kind.DISCLOSURE)
        for whose, found in (
            (s.subject, leaks(mine, theirs, s.other)),
            (s.other, leaks(theirs, mine, s.subject)),
        ):
            if found:
                fail(
                    f"disclose({whose}) returned data of another subject:\n"
                    + "\n".join(f"  - {f}" for f in found)
                    + "\nIf the two people really share a value, seed them with different ones."
                )

    def test_third_party_records_are_listed(self, kit: Session) -> None:
        kit.require(Kind.THIRD_PARTY_RECORDS)
        s = kit.seeded
        mine, theirs = _records_of_both(kit, Kind.THIRD_PARTY_RECORDS)
        # Two people's provisions may share a recipient and a purpose, so only whole
        # records and identifiers count here.
        found = leaks(mine, theirs, s.other, by_value=False)
        if found:
            fail(
                f"third_party_records({s.subject}) returned provision records of another "
                "subject:\n" + "\n".join(f"  - {f}" for f in found)
            )

    def test_unknown_subject_is_an_empty_result(self, kit: Session) -> None:
        s = kit.seeded
        unknown = s.unknown_identifiers()
        before = kit.view()
        for kind in ORDER:
            if not kit.supports(kind) or (kind is Kind.CORRECTION and s.correction is None):
                continue
            try:
                result = run(kit.connector, kind, unknown, change=s.correction)
            except ConnectorError as exc:
                fail(
                    f"{label(kind)} raised {type(exc).__name__} ({exc}) for identifiers nobody "
                    f"has ({unknown}); an unknown subject is an empty result, not an error"
                )
            if result.records or result.changed:
                fail(
                    f"{label(kind)} returned {len(result.records)} record(s) and changed "
                    f"{result.changed} for identifiers nobody has ({unknown}); "
                    "it must return an empty result"
                )
        if kit.view() != before:
            fail(f"operations on an unknown subject ({unknown}) changed the seeded people's data")

    def test_undeclared_kinds_raise_not_supported(self, kit: Session) -> None:
        s = kit.seeded
        undeclared = [k for k in ORDER if not kit.supports(k)]
        if not undeclared:
            pytest.skip("the connector declares every kind")
        for kind in undeclared:
            what = label(kind)
            try:
                invoke(kit.connector, kind, s.subject, change=s.correction, dry_run=True)
            except NotSupported:
                continue
            except NotImplementedError:
                fail(
                    f"{what} raises NotImplementedError, but the connector does not declare "
                    f"{kind}: delete the method, so the base class raises NotSupported"
                )
            except ConnectorError as exc:
                fail(
                    f"{what} raised {type(exc).__name__} for {kind}, which the connector "
                    "does not declare; it must raise NotSupported"
                )
            fail(
                f"{what} returned a result although the connector does not declare {kind}; "
                "leave the method to the base class (it raises NotSupported), or declare the kind"
            )


def _records_of_both(kit: Session, kind: Kind) -> tuple[list[Record], list[Record]]:
    """The subject's and the other person's records, both of which must exist."""
    s = kit.seeded
    out = []
    for who, ids in (("subject", s.subject), ("other person", s.other)):
        records = kit.read(kind, ids).records
        if not records:
            fail(
                f"{label(kind)} returned nothing for the seeded {who} {ids}; "
                "Harness.seed() must give them data here"
            )
        check_records(label(kind), records)
        out.append(records)
    return out[0], out[1]
