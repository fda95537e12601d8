"""The kit's tests of changing data: correction, dry runs, erasure, suspension."""

from __future__ import annotations

import pytest

from connectors.base import METHODS
from connectors.results import OperationResult
from connectors.testing.calls import attempt, fail, label, run
from connectors.testing.compare import difference, left_behind, same
from connectors.testing.harness import Harness
from connectors.testing.session import Session
from streams.records import Change, Kind

DESTRUCTIVE = [Kind.CORRECTION, Kind.SUSPENSION, Kind.ERASURE, Kind.THIRD_PARTY_STOP]


class ChangeTests:
    def test_correction_shows_in_the_next_disclosure(self, kit: Session) -> None:
        kit.require(Kind.CORRECTION, Kind.DISCLOSURE)
        s = kit.seeded
        change = _correction(kit)
        old = _field_values(kit, change.field)
        if not old:
            fail(
                f"Seeded.correction changes {change.field!r}, but disclose() shows no such field "
                "for the subject; pick a field their records have"
            )
        if all(same(o, change.value) for o in old):
            fail(f"the subject's {change.field!r} is already {change.value!r}; pick a new value")
        others = kit.view("other")

        result = run(kit.connector, Kind.CORRECTION, s.subject, change=change)

        if result.changed <= 0:
            fail(f"correct() reported changed={result.changed} for {change!r}")
        entries = result.correction.changes if result.correction else None
        if not any(
            e.field == change.field
            and same(e.new, change.value)
            and any(same(e.old, o) for o in old)
            for e in entries or []
        ):
            fail(
                "correct() must report each change in OperationResult.correction "
                "(CorrectionReport.of(changes, ...), each change with its field, old and new "
                f"value); for {change!r} it reported {entries!r}"
            )
        after = _field_values(kit, change.field)
        if not any(same(a, change.value) for a in after):
            fail(f"after correct(), disclose() does not show {change.field} = {change.value!r}")
        stale = [a for a in after if not same(a, change.value) and any(same(a, o) for o in old)]
        if stale:
            fail(f"after correct(), disclose() still shows {change.field} = {stale[0]!r}")
        if kit.view("other") != others:
            fail("correct() also changed the other subject's data")

    @pytest.mark.parametrize("kind", DESTRUCTIVE, ids=[METHODS[k] for k in DESTRUCTIVE])
    def test_dry_run_changes_nothing(self, kit: Session, kind: Kind) -> None:
        kit.require(kind)
        s, what = kit.seeded, label(kind, dry_run=True)
        change = _correction(kit) if kind is Kind.CORRECTION else None
        before = kit.view()

        planned = run(kit.connector, kind, s.subject, change=change, dry_run=True)

        if not planned.dry_run:
            fail(f"{what} returned a result with dry_run=False")
        after = kit.view()
        for part, records in before.items():
            if after[part] != records:
                fail(f"{what} changed the {part}:\n" + difference(records, after[part]))
        if planned.changed <= 0:
            fail(
                f"{what} reported changed=0 for the seeded subject; a dry run must report what "
                "a real run would change (and seed() must give the subject data to change)"
            )
        done = run(kit.connector, kind, s.subject, change=change)

        def told(r: OperationResult) -> str:
            return (
                f"changed={r.changed}, kept={r.kept}, pending_purge={r.pending_purge}, "
                f"fields={sorted(r.fields)}"
            )

        if told(done) != told(planned):
            fail(f"{what} planned {told(planned)}, but the real run made {told(done)}")

    def test_erasure_empties_the_disclosure_and_is_idempotent(self, kit: Session) -> None:
        kit.require(Kind.ERASURE)
        s = kit.seeded
        reads = kit.supports(Kind.DISCLOSURE)
        before = kit.read(Kind.DISCLOSURE, s.subject).records if reads else []
        others = kit.view("other")

        first = run(kit.connector, Kind.ERASURE, s.subject)

        if first.changed <= 0:
            fail("erase() reported changed=0 for the seeded subject")
        parts = (first.kept, first.pending_purge)
        if min(parts) < 0 or sum(parts) > first.changed:
            fail(
                f"erase() reported kept={first.kept} and pending_purge={first.pending_purge} "
                f"of changed={first.changed}: the records kept with identifying fields "
                "removed, and those whose earlier copies await a clean-up, are part of those "
                "changed"
            )
        after = kit.read(Kind.DISCLOSURE, s.subject).records if reads else []
        found = left_behind(before, after, first.fields, s.subject)
        if found:
            fail(
                "after erase(), disclose() still returns the subject's personal data:\n"
                + "\n".join(f"  - {f}" for f in found)
            )
        second = run(kit.connector, Kind.ERASURE, s.subject)
        if second.changed != 0:
            fail(
                f"erase() changed {second.changed} more on a second run; erasure must be "
                "idempotent (a retried task runs it again)"
            )
        if reads and kit.read(Kind.DISCLOSURE, s.subject).records != after:
            fail("a second erase() changed what disclose() returns")
        if kit.view("other") != others:
            fail("erase() also changed the other subject's data")

    def test_suspension_is_visible(self, kit: Session) -> None:
        kit.require(Kind.SUSPENSION)
        h, s = kit.harness, kit.seeded
        default = type(h).is_suspended is Harness.is_suspended
        if default and not kit.supports(Kind.DISCLOSURE):
            fail(
                "the default Harness.is_suspended() reads disclose(), which the connector "
                "does not declare; override is_suspended() in your harness"
            )
        how = (
            " (the default Harness.is_suspended() looks in disclose() for a true field, or a "
            "_source, named like suspended, suppressed or restricted; override it if your "
            "system shows suspension another way)"
            if default
            else ""
        )
        if _suspended(kit, s.subject):
            fail(f"the subject shows as suspended before suspend(); seed them unsuspended{how}")

        result = run(kit.connector, Kind.SUSPENSION, s.subject)

        if result.changed <= 0:
            fail("suspend() reported changed=0 for the seeded subject")
        if not _suspended(kit, s.subject):
            fail(f"after suspend(), the subject does not show as suspended{how}")
        if kit.supports(Kind.DISCLOSURE) and not kit.read(Kind.DISCLOSURE, s.subject).records:
            fail("suspend() must keep the data, but disclose() returns nothing after it")
        if _suspended(kit, s.other):
            fail("suspend() suspended the other subject too")


def _correction(kit: Session) -> Change:
    change = kit.seeded.correction
    if change is None:
        fail("the connector declares correction, but Harness.seed() gave no Seeded.correction")
    return change


def _field_values(kit: Session, field: str) -> list[object]:
    records = kit.read(Kind.DISCLOSURE, kit.seeded.subject).records
    return [r[field] for r in records if field in r]


def _suspended(kit: Session, who: dict[str, str]) -> bool:
    return bool(attempt("Harness.is_suspended()", kit.harness.is_suspended, kit.connector, who))
