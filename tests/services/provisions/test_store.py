"""The provision store on SQLite and PostgreSQL: idempotent records, stops, and purges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from services.ledger import Ledger
from services.ledger.models import AuditEntry, ProvisionRecord, ProvisionSubject
from services.provisions.store import ProvisionStore
from tests.fixtures.ledger_rows import DEADLINE, event
from tests.services.provisions.fixtures import (
    ALICE,
    ALICE_DIGEST,
    BOB,
    as_digests,
    digest,
    make,
    provision,
    receipt,
)

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC).isoformat()


def _audit(ledger: Ledger, action: str) -> list[AuditEntry]:
    with ledger.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_the_same_record_id_is_stored_once(store: ProvisionStore, ledger: Ledger) -> None:
    assert store.record(make(provision()), via="test").status == "recorded"
    assert store.record(make(provision()), via="test").status == "duplicate"
    with ledger.session() as s:
        assert s.scalar(select(func.count()).select_from(ProvisionRecord)) == 1
    assert len(_audit(ledger, "provision_recorded")) == 1


def test_another_record_under_a_known_record_id_is_refused(store: ProvisionStore) -> None:
    store.record(make(provision()), via="test")
    other = store.record(make(provision(items=["phone"])), via="test")
    assert (other.status, other.reason_code) == ("rejected", "record_id_conflict")


def test_subjects_are_stored_as_digests_only(store: ProvisionStore, ledger: Ledger) -> None:
    store.record(
        make(provision(subject={"email": "alice@example.jp", "customer_id": "C-1"})), via="t"
    )
    with ledger.session() as s:
        digests = list(s.scalars(select(ProvisionSubject.digest)))
        row = s.scalars(select(ProvisionRecord)).one()
    assert len(digests) == 2 and all(len(d) == 64 for d in digests)
    assert "alice" not in repr(vars(row)) and "C-1" not in repr(vars(row))


def _subject_digests(ledger: Ledger, record_id: str) -> set[str]:
    with ledger.session() as s:
        return set(
            s.scalars(
                select(ProvisionSubject.digest)
                .join(ProvisionRecord, ProvisionRecord.id == ProvisionSubject.record_pk)
                .where(ProvisionRecord.record_id == record_id)
            )
        )


def test_a_subject_sent_as_digests_is_stored_as_one_sent_as_identifiers(
    store: ProvisionStore, ledger: Ledger
) -> None:
    both = {"email": "alice@example.jp", "customer_id": "C-1"}
    store.record(make(provision("p-clear", both)), via="t")
    sent = as_digests(provision("p-digests"), ALICE_DIGEST, digest("customer_id:C-1"))
    assert store.record(make(sent), via="t").status == "recorded"
    assert _subject_digests(ledger, "p-digests") == _subject_digests(ledger, "p-clear")
    assert len(_subject_digests(ledger, "p-digests")) == 2
    assert [r.record_id for r in store.records_of(ALICE)] == ["p-clear", "p-digests"]


def test_a_record_resent_in_the_other_form_is_a_duplicate(store: ProvisionStore) -> None:
    assert store.record(make(provision("p-1")), via="t").status == "recorded"
    assert store.record(make(as_digests(provision("p-1"))), via="t").status == "duplicate"
    assert store.record(make(as_digests(provision("p-2"))), via="t").status == "recorded"
    assert store.record(make(provision("p-2")), via="t").status == "duplicate"
    other = store.record(
        make(as_digests(provision("p-2"), digest("email:bob@example.jp"))), via="t"
    )
    assert (other.status, other.reason_code) == ("rejected", "record_id_conflict")


def test_a_record_stored_before_digests_existed_is_still_a_duplicate(
    store: ProvisionStore, ledger: Ledger
) -> None:
    old = provision("p-old", {"email": "alice@example.jp", "customer_id": "C-1"})
    store.record(make(old), via="t")
    with ledger.session() as s:  # the content digest as the ledger kept it until then
        s.execute(
            update(ProvisionRecord).values(
                content_sha256="143b4b263a3936248c2bd93bb7f3855808c090281505d39f9bc12fafb71a447e"
            )
        )
    assert store.record(make(old), via="t").status == "duplicate"
    changed = store.record(make(old | {"items": ["phone"]}), via="t")
    assert changed.reason_code == "record_id_conflict"


def test_a_stop_then_a_later_provision_is_refused_and_audited(
    store: ProvisionStore, ledger: Ledger
) -> None:
    store.record(
        make(provision(subject={"email": "alice@example.jp", "customer_id": "C-1"})), via="t"
    )
    store.record(make(provision("p-bob", BOB)), via="t")
    assert store.stop(ALICE, "stop-1", dry_run=True) == ["Acme Logistics K.K."]
    assert store.stopped(ALICE) == set()  # a dry run changes nothing
    assert store.stop(ALICE, "stop-1") == ["Acme Logistics K.K."]
    assert store.stop(ALICE, "stop-1") == []  # idempotent

    # the same recipient, spelt differently, and the principal named by another identifier
    later = make(
        provision("p-2", {"customer_id": "C-1"}, counterparty={"name": "ACME  Logistics k.k."})
    )
    refused = store.record(later, via="topic")
    assert (refused.status, refused.reason_code) == ("rejected", "provision_stopped")
    [audit] = _audit(ledger, "provision_refused")
    assert audit.detail["reason_code"] == "provision_stopped"
    assert audit.detail["record_id"] == "p-2"
    [stopped] = _audit(ledger, "provision_stopped")
    assert stopped.request_id == "stop-1"
    # other principals, other recipients, receipts and out-of-scope flows still go in
    assert store.record(make(provision("p-3", BOB)), via="t").status == "recorded"
    assert (
        store.record(make(provision("p-4", counterparty={"name": "Other Co."})), via="t").status
        == "recorded"
    )
    assert store.record(make(receipt("r-1", ALICE)), via="t").status == "recorded"
    # and the principal named by a digest is the principal
    by_digest = store.record(make(as_digests(provision("p-6"))), via="t")
    assert by_digest.reason_code == "provision_stopped"
    entrusted = provision("p-5", flow="entrustment", basis=None, consent=None)
    assert store.record(make(entrusted), via="t").status == "recorded"


def test_an_unknown_principal_stops_nothing(store: ProvisionStore) -> None:
    store.record(make(provision()), via="t")
    assert store.stop({"email": "nobody@example.jp"}, None) == []


def test_purge_removes_expired_records_and_audits_the_count(
    store: ProvisionStore, ledger: Ledger
) -> None:
    store.record(make(provision("old-1", recorded_at=LONG_AGO, provided_on="2019-12-01")), via="t")
    store.record(
        make(provision("old-2", BOB, recorded_at=LONG_AGO, provided_on="2019-12-01")), via="t"
    )
    store.record(make(provision("new-1")), via="t")

    planned = store.purge(dry_run=True)
    assert (planned.purged, planned.held) == (2, 0)
    assert _audit(ledger, "records_purged") == []
    done = store.purge()
    assert (done.purged, done.held) == (2, 0)
    [audit] = _audit(ledger, "records_purged")
    assert audit.detail == {"count": 2, "held": 0}
    with ledger.session() as s:
        assert list(s.scalars(select(ProvisionRecord.record_id))) == ["new-1"]
        assert s.scalar(select(func.count()).select_from(ProvisionSubject)) == 1
    assert store.purge().purged == 0
    assert len(_audit(ledger, "records_purged")) == 1  # nothing due, nothing written


def test_purge_keeps_records_while_a_request_about_them_is_pending(
    store: ProvisionStore, ledger: Ledger
) -> None:
    store.record(
        make(provision("old-alice", recorded_at=LONG_AGO, provided_on="2019-12-01")), via="t"
    )
    store.record(
        make(provision("old-bob", BOB, recorded_at=LONG_AGO, provided_on="2019-12-01")), via="t"
    )
    pending = event(
        "tpr-1", kind="third_party_records", subject={"identifiers": {"email": "ALICE@example.jp"}}
    )
    ledger.admit(pending, "hold", "fee_unpaid", DEADLINE)

    done = store.purge()
    assert (done.purged, done.held) == (1, 1)
    [audit] = _audit(ledger, "records_purged")
    assert audit.detail == {"count": 1, "held": 1}
    with ledger.session() as s:
        assert list(s.scalars(select(ProvisionRecord.record_id))) == ["old-alice"]
    # an expired record is never shown, even while it is kept for the pending request
    assert store.records_of(ALICE) == []


def test_records_of_returns_only_records_in_retention(store: ProvisionStore) -> None:
    store.record(make(provision("p-1")), via="t")
    store.record(
        make(provision("p-2", form="contract_substitute", provided_on="2026-04-01")), via="t"
    )
    in_two_years = datetime.now(UTC) + timedelta(days=730)
    assert [r.record_id for r in store.records_of(ALICE)] == ["p-1", "p-2"]
    assert [r.record_id for r in store.records_of(ALICE, now=in_two_years)] == ["p-1"]
