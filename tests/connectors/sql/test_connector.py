"""Each SQL operation on real databases: SQLite, and PostgreSQL when reachable.

The conformance kit (``tests/connectors/test_sql.py``) checks the contract; these
check what is particular to SQL: several tables joined through identifiers,
erasure strategies, suppression tables and the provision log.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors import FatalError, OperationResult, pseudonyms
from connectors.sql import SQLConnector
from streams.records import Change, FieldChange
from tests.connectors.fixtures import ALICE, ERASURE_KEY, Database, seeded


def keyed(text: str, key: bytes = ERASURE_KEY) -> str:
    """What ``hash`` erasure must store: HMAC-SHA256 under the erasure key."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def test_disclose_returns_the_subjects_rows_and_only_theirs(db: Database) -> None:
    result = db.connector().disclose(ALICE)

    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in result.records:
        by_source.setdefault(record["_source"], []).append(record)
    assert [r["email"] for r in by_source["customers"]] == ["alice@example.com"]
    assert by_source["customers"][0]["birthday"] == "1990-01-02"
    assert [r["item"] for r in by_source["orders"]] == ["book", "lamp"]
    assert "bob" not in repr(result.records).lower()
    assert result.identities == [{"email": "alice@example.com", "customer_id": "1"}]
    assert result.discovered_identifiers == {}
    assert {"email", "name", "item", "address"} <= set(result.fields)


def test_disclose_honours_the_configured_columns(db: Database) -> None:
    cfg = db.config()
    cfg["tables"][0]["columns"] = ["email", "name"]
    cfg["tables"][0]["correctable"] = ["name"]
    customer = [r for r in db.connector(cfg).disclose(ALICE).records if r["_source"] == "customers"]
    assert customer == [
        {"email": "alice@example.com", "name": "Alice Example", "_source": "customers"}
    ]


@pytest.mark.parametrize(
    "identifiers",
    [
        {"email": "nobody@example.com"},
        {"customer_id": "999"},
        {"customer_id": "not-a-number"},
        {"phone": "+81-3-0000-0001"},
        {},
    ],
)
def test_an_unknown_subject_is_an_empty_result(db: Database, identifiers: dict[str, str]) -> None:
    connector = db.connector()
    assert connector.disclose(identifiers) == OperationResult()
    assert connector.erase(identifiers, grounds=["withdrawn"]).changed == 0
    assert db.snapshot()["customers"][0]["name"] == "Alice Example"


def test_a_correction_shows_in_the_next_disclosure(db: Database) -> None:
    connector = db.connector()
    changes = [
        Change(field="name", value="Alice Corrected"),
        Change(field="birthday", value="1990-02-03"),
        Change(field="address", value="3 New Street"),
    ]

    result = connector.correct(ALICE, changes)

    assert result.changed == 3  # one customer row, two order rows
    assert result.fields == ["address", "birthday", "name"]
    assert result.correction is not None
    changes_made = result.correction.changes
    assert (
        FieldChange(
            table="customers", field="name", old="Alice Example", new="Alice Corrected", rows=1
        )
        in changes_made
    )
    assert (
        FieldChange(table="customers", field="birthday", old="1990-01-02", new="1990-02-03", rows=1)
        in changes_made
    )
    assert (
        FieldChange(
            table="orders", field="address", old="1 Alice Street", new="3 New Street", rows=2
        )
        in changes_made
    )
    assert result.correction.not_found == []

    records = connector.disclose(ALICE).records
    assert {r["name"] for r in records if r["_source"] == "customers"} == {"Alice Corrected"}
    assert {r["address"] for r in records if r["_source"] == "orders"} == {"3 New Street"}
    assert db.rows("customers")[1]["name"] == "Bob Other"
    assert db.rows("orders")[2]["address"] == "2 Bob Road"
    assert connector.correct(ALICE, changes).changed == 0  # already applied


def test_a_correction_reports_fields_it_cannot_apply(db: Database) -> None:
    changes = [
        Change(field="shoe_size", value=42),
        Change(field="item", value="chair"),
        Change(field="phone", value="+81-3-9999-9999"),
    ]
    result = db.connector().correct(ALICE, changes)
    assert result.correction is not None
    assert result.correction.not_found == ["shoe_size"]
    assert result.correction.not_correctable == ["item"]
    assert result.changed == 1 and result.fields == ["phone"]


def test_a_correction_with_a_value_of_the_wrong_type_is_fatal(db: Database) -> None:
    with pytest.raises(FatalError, match=r"customers\.birthday") as caught:
        db.connector().correct(ALICE, [Change(field="birthday", value="next tuesday")])
    assert "tuesday" not in str(caught.value)


def test_erasure_deletes_and_anonymises_per_column(db: Database) -> None:
    result = db.connector().erase(ALICE, grounds=["withdrawn_consent"])

    assert result.changed == 3
    assert result.kept == 1  # the customer's row, anonymised; the 2 orders are deleted
    assert {"table": "orders", "action": "delete", "rows": 2} in result.details["tables"]
    alice, bob = db.rows("customers")
    assert alice["email"] == keyed("alice@example.com")
    assert alice["name"] == "***"
    assert alice["phone"] is None and alice["birthday"] is None
    assert bob["email"] == "bob@example.com" and bob["name"] == "Bob Other"
    assert [o["id"] for o in db.rows("orders")] == [12]
    assert db.connector().disclose(ALICE).records == []


def test_erasure_is_idempotent(db: Database) -> None:
    connector = db.connector()
    assert connector.erase(ALICE, grounds=["withdrawn_consent"]).changed == 3
    before = db.snapshot()
    again = connector.erase(ALICE, grounds=["withdrawn_consent"])
    assert again.changed == 0 and again.fields == []
    assert db.snapshot() == before


def test_hashing_is_not_repeated_when_the_row_can_still_be_found(db: Database) -> None:
    cfg = db.config()
    cfg["tables"][0]["erasure"] = {"columns": {"name": "hash", "phone": "mask", "birthday": None}}
    connector = db.connector(cfg)

    first = connector.erase(ALICE, grounds=["withdrawn_consent"])
    assert first.changed == 3 and first.fields == sorted(
        ["birthday", "name", "phone", "id", "customer_id", "item", "address"]
    )
    assert db.rows("customers")[0]["name"] == keyed("Alice Example")
    assert db.rows("customers")[0]["phone"] == "***"
    assert connector.erase(ALICE, grounds=["withdrawn_consent"]).changed == 0
    assert db.rows("customers")[0]["name"] == keyed("Alice Example")


def _erased_with(key: bytes | None, tmp_path: Path, who: dict[str, str]) -> list[Any]:
    """Erase ``who`` (email and name by ``hash``) in a fresh database under ``key``;
    the customers' (email, name) left."""
    pseudonyms.configure(key)
    tmp_path.mkdir()
    with seeded("sqlite", tmp_path) as db:
        cfg = db.config()
        cfg["tables"][0]["erasure"] = {"columns": {"email": "hash", "name": "hash"}}
        cfg["tables"][1]["erasure"] = {"strategy": "delete"}
        db.connector(cfg).erase(who, grounds=["withdrawn_consent"])
        return [(r["email"], r["name"]) for r in db.rows("customers")]


def test_hash_erasure_is_keyed_not_a_guessable_sha256(tmp_path: Path) -> None:
    [alice, bob] = _erased_with(ERASURE_KEY, tmp_path / "a", ALICE)
    # Not reversible by hashing every candidate value: no plain digest is stored.
    plain = {hashlib.sha256(v.encode()).hexdigest() for v in ("alice@example.com", "Alice Example")}
    assert not plain & set(alice)
    assert alice == (keyed("alice@example.com"), keyed("Alice Example"))
    assert bob == ("bob@example.com", "Bob Other")
    # Stable under the same key (another run, another database), different under another.
    assert _erased_with(ERASURE_KEY, tmp_path / "b", ALICE)[0] == alice
    other_key = b"another deployment's 32-byte key"
    other = _erased_with(other_key, tmp_path / "c", ALICE)[0]
    assert other[0] != alice[0] and other[1] != alice[1]
    assert other == (keyed("alice@example.com", other_key), keyed("Alice Example", other_key))


def test_hash_erasure_without_a_key_is_refused_and_changes_nothing(sqlite_db: Database) -> None:
    pseudonyms.configure(None)
    before = sqlite_db.snapshot()
    with pytest.raises(FatalError, match="erasure key"):
        sqlite_db.connector().erase(ALICE, grounds=["withdrawn_consent"])
    assert sqlite_db.snapshot() == before


def test_suspension_by_flag_and_by_moving_rows(db: Database) -> None:
    connector = db.connector()
    result = connector.suspend(ALICE, grounds=["unlawful_processing"])

    assert result.changed == 3
    assert {
        "table": "orders",
        "action": "move",
        "to": "orders_suppressed",
        "rows": 2,
    } in result.details["tables"]
    assert [c["processing_suspended"] for c in db.rows("customers")] == [True, False]
    assert [o["id"] for o in db.rows("orders")] == [12]
    assert [o["id"] for o in db.rows("orders_suppressed")] == [10, 11]
    # Suspended data is still held, so it is still disclosed.
    sources = [r["_source"] for r in connector.disclose(ALICE).records]
    assert sources == ["customers", "orders_suppressed", "orders_suppressed"]
    assert connector.suspend(ALICE, grounds=["unlawful_processing"]).changed == 0


def test_erasure_reaches_suppressed_rows(db: Database) -> None:
    connector = db.connector()
    connector.suspend(ALICE, grounds=["unlawful_processing"])
    result = connector.erase(ALICE, grounds=["withdrawn_consent"])
    assert {"table": "orders_suppressed", "action": "delete", "rows": 2} in result.details["tables"]
    assert db.rows("orders_suppressed") == []


def test_third_party_records_reads_the_provision_log(db: Database) -> None:
    result = db.connector().third_party_records(ALICE)
    assert result.records == [
        {
            "recipient": "Acme Logistics",
            "purpose": "delivery",
            "provided_at": "2024-04-01T09:30:00",
            "_source": "provisions",
        }
    ]


def test_stop_third_party_provision_sets_the_stopped_column(db: Database) -> None:
    connector = db.connector()
    result = connector.stop_third_party_provision(ALICE, grounds=["unlawful_provision"])
    assert result.changed == 1 and result.fields == ["stopped"]
    assert [p["stopped"] for p in db.rows("provisions")] == [True, False]
    assert connector.stop_third_party_provision(ALICE, grounds=["x"]).changed == 0


DESTRUCTIVE: dict[str, Callable[[SQLConnector, bool], OperationResult]] = {
    "correct": lambda c, dry: c.correct(
        ALICE,
        [Change(field="name", value="New"), Change(field="address", value="Elsewhere")],
        dry_run=dry,
    ),
    "suspend": lambda c, dry: c.suspend(ALICE, grounds=["g"], dry_run=dry),
    "erase": lambda c, dry: c.erase(ALICE, grounds=["g"], dry_run=dry),
    "stop": lambda c, dry: c.stop_third_party_provision(ALICE, grounds=["g"], dry_run=dry),
}


@pytest.mark.parametrize("operation", list(DESTRUCTIVE))
def test_a_dry_run_reports_the_change_and_makes_none(db: Database, operation: str) -> None:
    connector = db.connector()
    before = db.snapshot()

    planned = DESTRUCTIVE[operation](connector, True)
    assert db.snapshot() == before
    assert planned.dry_run and planned.changed > 0

    done = DESTRUCTIVE[operation](connector, False)
    assert db.snapshot() != before
    assert (planned.changed, planned.fields, planned.details) == (
        done.changed,
        done.fields,
        done.details,
    )
