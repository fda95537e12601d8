"""``dsr provisions import`` and ``dsr provisions purge``, on a real SQLite ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from services.cli import app
from services.ledger import Ledger
from services.ledger.models import AuditEntry
from services.provisions.importer import nest
from services.provisions.store import ProvisionStore
from tests.services.provisions.fixtures import (
    ALICE,
    ALICE_DIGEST,
    BOB,
    as_digests,
    digest,
    provision,
)

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC).isoformat()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("DSR_DATABASE_URL", url)
    return url


def test_jsonl_import_reports_imported_duplicate_and_rejected(tmp_path: Path, url: str) -> None:
    lines = [
        json.dumps(provision("p-1")),
        json.dumps(provision("p-1")),  # the same record again
        json.dumps(provision("p-1", items=["phone"])),  # another record, same id
        json.dumps(provision("p-2", BOB, basis=None)),  # no basis
        "{oops",
        "",
        json.dumps(provision("p-3", BOB)),
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = CliRunner().invoke(app, ["provisions", "import", str(path)])

    assert result.exit_code == 1, result.output
    assert "2 imported, 1 duplicate, 3 rejected." in result.output
    assert "line 3: record_id_conflict" in result.output
    assert "line 4: schema_violation" in result.output
    assert "line 5: invalid_json" in result.output
    assert "bob@example.jp" not in result.output  # never echoes identifiers
    ledger = Ledger(url)
    store = ProvisionStore(ledger.engine)
    assert [r.record_id for r in store.records_of(ALICE)] == ["p-1"]
    ledger.close()


def test_csv_import_with_dotted_headers(tmp_path: Path, url: str) -> None:
    path = tmp_path / "records.csv"
    path.write_text(
        "schema_version,record_id,system,direction,subject.identifiers.email,counterparty.name,"
        "items,basis,consent,provided_on,cross_border.country\n"
        "1.0,c-1,partners,provision,alice@example.jp,Acme K.K.,name; address,consent,CF-1,"
        "2026-04-01,\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["provisions", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 imported, 0 duplicate, 0 rejected." in result.output
    ledger = Ledger(url)
    [row] = ProvisionStore(ledger.engine).records_of(ALICE)
    assert (row.items, row.cross_border) == (["name", "address"], None)
    ledger.close()


def test_subjects_sent_as_digests_are_imported_from_jsonl_and_csv(tmp_path: Path, url: str) -> None:
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text(json.dumps(as_digests(provision("j-1"))) + "\n")
    csv_file = tmp_path / "records.csv"
    csv_file.write_text(
        "schema_version,record_id,system,direction,subject.digests,counterparty.name,"
        "items,basis,consent,provided_on\n"
        f"1.0,c-1,partners,provision,{ALICE_DIGEST}; {digest('customer_id:C-1')},Acme K.K.,"
        "name,consent,CF-1,2026-04-01\n",
        encoding="utf-8",
    )
    for path in (jsonl, csv_file):
        result = CliRunner().invoke(app, ["provisions", "import", str(path)])
        assert result.exit_code == 0, result.output
        assert "1 imported, 0 duplicate, 0 rejected." in result.output
    ledger = Ledger(url)
    store = ProvisionStore(ledger.engine)
    assert [r.record_id for r in store.records_of(ALICE)] == ["j-1", "c-1"]
    assert [r.record_id for r in store.records_of({"customer_id": "C-1"})] == ["c-1"]
    ledger.close()


def test_nest_builds_objects_from_dotted_headers() -> None:
    row = {"subject.email": "a@x.jp", "items": "a;b", "note": "", "cross_border.country": None}
    assert nest(row) == {"subject": {"email": "a@x.jp"}, "items": ["a", "b"]}
    assert nest({"subject.digests": "d1; d2;"}) == {"subject": {"digests": ["d1", "d2"]}}


def test_purge_command_dry_run_then_purge(tmp_path: Path, url: str) -> None:
    path = tmp_path / "records.jsonl"
    old = provision("old", recorded_at=LONG_AGO, provided_on="2019-12-01")
    path.write_text(json.dumps(old) + "\n" + json.dumps(provision("new")) + "\n")
    assert CliRunner().invoke(app, ["provisions", "import", str(path)]).exit_code == 0

    planned = CliRunner().invoke(app, ["provisions", "purge", "--dry-run"])
    assert "1 record(s) past retention would be purged" in planned.output
    done = CliRunner().invoke(app, ["provisions", "purge"])
    assert done.exit_code == 0 and "1 record(s) past retention purged" in done.output
    ledger = Ledger(url)
    with ledger.session() as s:
        purged = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "records_purged")))
    assert [a.detail["count"] for a in purged] == [1]
    ledger.close()
