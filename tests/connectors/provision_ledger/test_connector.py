"""What a principal is told from the provision ledger (rules 9 and 16), and how the
connector is found and configured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.provision_ledger import ProvisionLedgerConnector
from connectors.registry import load_connector_class
from services.ledger import Ledger
from services.provisions.store import ProvisionStore
from tests.fixtures.databases import libpq_options, make_url
from tests.services.provisions.fixtures import ALICE, BOB, make, provision, receipt

CROSS_BORDER = {
    "country": "United States",
    "protection_system": "sectoral federal laws; CCPA in California",
    "recipient_measures": "a data processing agreement with APPI-level safeguards",
}


@pytest.fixture
def seeded(database_url: str) -> Iterator[tuple[ProvisionStore, ProvisionLedgerConnector]]:
    ledger = Ledger(database_url)
    ledger.migrate()
    connector = ProvisionLedgerConnector("provision_ledger", {"url": database_url})
    yield ProvisionStore(ledger.engine), connector
    connector.close()
    ledger.close()


def _by_source(connector: ProvisionLedgerConnector) -> dict[str, list[dict[str, object]]]:
    tables: dict[str, list[dict[str, object]]] = {}
    for record in connector.third_party_records(ALICE).records:
        tables.setdefault(str(record["_source"]), []).append(record)
    return tables


def test_rule_9_only_records_in_retention_with_all_their_items(
    seeded: tuple[ProvisionStore, ProvisionLedgerConnector],
) -> None:
    store, connector = seeded
    expired = datetime(2021, 1, 1, tzinfo=UTC).isoformat()
    for body in (
        provision(
            "kept", cross_border=CROSS_BORDER, form="continuous", last_provided_on="2026-06-01"
        ),
        provision("expired", recorded_at=expired, provided_on="2020-12-01"),
        provision("old-contract", form="contract_substitute", provided_on="2024-01-10"),
        receipt("received", ALICE),
        provision("bobs", BOB),
    ):
        assert store.record(make(body), via="test").status == "recorded"

    tables = _by_source(connector)

    assert sorted(tables) == ["provisions", "receipts"]
    [given] = tables["provisions"]  # "expired" and "old-contract" are past retention
    assert given == {
        "_source": "provisions",
        "record_id": "kept",
        "provided_on": "2026-04-01",
        "last_provided_on": "2026-06-01",
        "recipient": "Acme Logistics K.K.",
        "recipient_address": None,
        "recipient_representative": None,
        "items": ["name", "address"],
        "basis": "consent",
        "consent": "consent form CF-1",
        "cross_border_country": "United States",
        "cross_border_protection_system": CROSS_BORDER["protection_system"],
        "cross_border_recipient_measures": CROSS_BORDER["recipient_measures"],
        "record_form": "continuous",
        "system": "partners",
        "recorded_at": given["recorded_at"],
        "retain_until": "2029-06-01T00:00:00+00:00",
        "stopped": False,
    }
    [got] = tables["receipts"]
    assert {k: got[k] for k in ("provider", "provider_address", "provider_representative")} == {
        "provider": "List Broker K.K.",
        "provider_address": "東京都港区1-1",
        "provider_representative": "代表取締役 田中",
    }
    assert (got["acquired_how"], got["basis"], got["ppc_publication"], got["received_on"]) == (
        "from its own customers",
        "opt_out",
        "PPC-2025-0001",
        "2026-04-01",
    )


def test_rule_16_out_of_scope_flows_are_labelled_not_listed_as_provisions(
    seeded: tuple[ProvisionStore, ProvisionLedgerConnector],
) -> None:
    store, connector = seeded
    store.record(make(provision("third-party")), via="test")
    for flow in ("entrustment", "joint_use", "statutory_exemption", "business_succession"):
        body = provision(f"f-{flow}", flow=flow, basis=None, consent=None)
        store.record(make(body), via="test")

    tables = _by_source(connector)

    assert [r["record_id"] for r in tables["provisions"]] == ["third-party"]
    flows = {str(r["flow"]): r for r in tables["out_of_scope_flows"]}
    assert sorted(flows) == [
        "business_succession",
        "entrustment",
        "joint_use",
        "statutory_exemption",
    ]
    assert flows["entrustment"]["label"] == "委託 / Entrustment"
    assert "Art. 27(5)(i)" in str(flows["entrustment"]["reason"])
    assert "Art. 27(1)" in str(flows["statutory_exemption"]["reason"])
    assert all(
        "not provision" in str(r["reason"]) or "needs no" in str(r["reason"])
        for r in flows.values()
    )


def test_stop_covers_every_recipient_and_shows_in_the_records(
    seeded: tuple[ProvisionStore, ProvisionLedgerConnector],
) -> None:
    store, connector = seeded
    store.record(make(provision("a-1")), via="test")
    store.record(make(provision("a-2", counterparty={"name": "Insure Co."})), via="test")
    store.record(
        make(
            provision(
                "a-3",
                flow="joint_use",
                basis=None,
                consent=None,
                counterparty={"name": "Group Co."},
            )
        ),
        via="test",
    )

    result = connector.stop_third_party_provision(ALICE, grounds=["provided_without_consent"])

    assert result.changed == 2
    assert result.details["recipients"] == ["Acme Logistics K.K.", "Insure Co."]
    assert all(r["stopped"] for r in _by_source(connector)["provisions"])


def test_the_connector_is_registered_and_defaults_to_the_pipelines_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_connector_class("provision_ledger") is ProvisionLedgerConnector
    monkeypatch.delenv("DSR_DATABASE_URL", raising=False)
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    connector = ProvisionLedgerConnector("provision_ledger", {})
    try:
        assert connector.config.masked_url() == f"sqlite:///{tmp_path / 'ledger.db'}"
        assert not connector.check().ok  # not migrated yet: says so, does not raise
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        ledger.migrate()
        ledger.close()
        assert connector.check().ok
    finally:
        connector.close()


@pytest.mark.postgres
def test_on_postgresql_a_silent_host_is_given_up_as_a_sql_systems_is(tmp_path: Path) -> None:
    """The options a SQL system's connections carry against a host that vanished
    (``connectors/sql/test_engine.py`` shows them at work), on the ledger it reads."""
    for url in make_url("postgres", tmp_path):
        connector = ProvisionLedgerConnector("provision_ledger", {"url": url})
        try:
            options = libpq_options(connector._engine)
        finally:
            connector.close()
        assert (options["connect_timeout"], options["tcp_user_timeout"]) == ("3", "5000")
