"""Checking the config against the live schema: what matched, and what did not."""

from __future__ import annotations

import pytest

from connectors import ConfigError
from tests.connectors.fixtures import ALICE, Database


def test_check_matches_the_schema(db: Database) -> None:
    result = db.connector().check()
    assert result.ok, result.message
    assert "3 tables and the provision log" in result.message


def test_a_schema_mismatch_is_reported_clearly(db: Database) -> None:
    cfg = db.config()
    cfg["tables"][0]["name"] = "custmers"
    cfg["tables"][1]["correctable"] = ["adress"]
    cfg["tables"][1]["erasure"] = {"columns": {"item": None}}
    connector = db.connector(cfg)

    check = connector.check()
    assert not check.ok
    assert "table 'custmers' does not exist" in check.message
    assert "orders: no correctable column(s) ['adress']" in check.message
    assert "orders.item: cannot null it: it is NOT NULL" in check.message
    with pytest.raises(ConfigError, match="'crm'"):
        connector.disclose(ALICE)
