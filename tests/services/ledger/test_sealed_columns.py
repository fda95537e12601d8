"""The ledger keeps personal data sealed: the request event and the identifiers
discovered open only with the request's data key, and are shredded with it; the
principal is found by digests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from services.crypto import KeyDestroyed, LocalKeyProvider
from services.crypto.digests import subject_digests
from services.crypto.sealing import Sealer, is_sealed_field
from services.ledger import Ledger, TaskPlan
from services.ledger.base import DISCOVERED_FIELD, MIGRATIONS
from streams.records import TaskResult, TaskStatus
from tests.fixtures.ledger_rows import DEADLINE, event

EMAIL, FOUND = "a@example.jp", "C-0042"


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyProvider:
    return LocalKeyProvider(tmp_path / "keys")


@pytest.fixture
def ledger(database_url: str, keys: LocalKeyProvider) -> Ledger:
    led = Ledger(database_url, sealer=Sealer(keys))
    led.migrate()
    yield led
    led.close()


PLANS = [TaskPlan(f"r-1:{s}", s, "disclosure", 0, TaskStatus.PENDING) for s in ("crm", "orders")]


def _looked_up(ledger: Ledger, units: list[dict[str, str]]) -> list[dict[str, str]]:
    """``units`` found by a lookup on the CRM, recorded with its result as the worker
    records them (the request fanned out first, if it is not yet); the graph after."""
    if not ledger.tasks("r-1"):
        ledger.fan_out("r-1", PLANS, timedelta(seconds=60))
    result = TaskResult(
        request_id="r-1",
        task_id="r-1:crm",
        system="crm",
        kind="disclosure",
        status="ok",
        started_at=datetime.now(UTC),
    )
    [recorded] = ledger.record_results([result], {"r-1": units})
    assert recorded.request is not None
    return ledger.identities(recorded.request)


def _stored(ledger: Ledger, request_id: str) -> str:
    """Everything the ledger's tables hold about ``request_id``, as text."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT event, discovered, subject_digests FROM requests WHERE request_id = :r"),
            {"r": request_id},
        ).all()
        audit = conn.execute(
            text("SELECT detail FROM audit_log WHERE request_id = :r"), {"r": request_id}
        ).all()
    return json.dumps([list(map(str, r)) for r in [*rows, *audit]])


def test_the_event_and_discovered_identifiers_are_kept_sealed(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    merged = _looked_up(ledger, [{"customer_id": FOUND}])
    assert merged == [{"customer_id": FOUND}]

    row = ledger.request("r-1")
    assert row is not None
    assert is_sealed_field(row.event) and is_sealed_field(row.discovered)
    stored = _stored(ledger, "r-1")
    assert EMAIL not in stored and FOUND not in stored
    assert ledger.request_event(row) == event()
    assert ledger.identities(row) == [{"customer_id": FOUND}]
    expected = subject_digests({"email": EMAIL}) | subject_digests({"customer_id": FOUND})
    assert set(row.subject_digests or []) == expected


def test_a_shredded_request_no_longer_opens(ledger: Ledger, keys: LocalKeyProvider) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    _looked_up(ledger, [{"customer_id": FOUND}])
    assert keys.destroy("r-1")
    row = ledger.request("r-1")
    assert row is not None
    fresh = Ledger(ledger.url, sealer=Sealer(keys))  # no key cached
    with pytest.raises(KeyDestroyed):
        fresh.request_event(row)
    with pytest.raises(KeyDestroyed):
        fresh.identities(row)
    fresh.close()


def test_a_ledger_without_keys_says_why_it_cannot_read_a_sealed_event(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    keyless = Ledger(ledger.url)
    row = keyless.request("r-1")
    assert row is not None
    with pytest.raises(LookupError, match="sealed in the ledger.*no data keys"):
        keyless.request_event(row)
    keyless.close()


def test_without_a_sealer_the_event_is_plain_and_still_digested(database_url: str) -> None:
    plain = Ledger(database_url)
    plain.migrate()
    plain.admit(event(), "proceed", None, DEADLINE)
    row = plain.request("r-1")
    assert row is not None and row.event["subject"]["identifiers"] == {"email": EMAIL}
    assert set(row.subject_digests or []) == subject_digests({"email": EMAIL})
    plain.close()


def test_the_migration_digests_requests_recorded_before_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(
            text(
                "INSERT INTO requests (request_id, kind, regulation, status, received_at,"
                " deadline_at, event, discovered, created_at, updated_at) VALUES ('old',"
                " 'disclosure', 'appi', 'accepted', '2026-01-01', '2026-02-01', :e, :d,"
                " '2026-01-01', '2026-01-01')"
            ),
            {
                "e": event("old").model_dump_json(),
                "d": json.dumps({"customer_id": [FOUND]}),
            },
        )
    ledger.migrate()
    row = ledger.request("old")
    assert row is not None
    expected = subject_digests({"email": EMAIL}) | subject_digests({"customer_id": FOUND})
    assert set(row.subject_digests or []) == expected
    assert ledger.identities(row) == [{"customer_id": FOUND}]  # the old format, as units
    ledger.close()


def test_a_graph_kept_in_the_old_format_reads_as_one_unit_per_value(ledger: Ledger) -> None:
    ledger.admit(event(), "proceed", None, DEADLINE)
    ledger.fan_out("r-1", PLANS, timedelta(seconds=60))
    assert ledger.sealer is not None
    old = ledger.sealer.seal_field("r-1", DISCOVERED_FIELD, {"order_id": ["O-1", "O-2"]})
    with ledger.session() as s:
        s.execute(
            text("UPDATE requests SET discovered = :d WHERE request_id = 'r-1'"),
            {"d": json.dumps(old)},
        )
    row = ledger.request("r-1")
    assert row is not None
    assert ledger.identities(row) == [{"order_id": "O-1"}, {"order_id": "O-2"}]
    merged = _looked_up(ledger, [{"order_id": "O-2"}, {"customer_id": FOUND}])
    assert merged == [{"order_id": "O-1"}, {"order_id": "O-2"}, {"customer_id": FOUND}]
