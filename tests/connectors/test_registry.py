"""Finding connectors by entry point and building them from the data map."""

from __future__ import annotations

import pytest

from connectors import ConfigError
from connectors.registry import build, build_all, installed, load_connector_class
from connectors.sql import SQLConnector
from services.datamap import SystemSpec, parse

DATAMAP = """
systems:
  crm:
    connector: sql
    identifiers: [email]
    config:
      url: sqlite://
      tables: [{name: customers, key: {column: email, identifier: email}}]
  analytics:
    connector: sql
    identifiers: [email]
    excluded: pseudonymised
    config:
      url: sqlite://
      tables: [{name: events, key: {column: email, identifier: email}}]
"""


def test_the_sql_connector_is_installed() -> None:
    assert "sql" in installed()
    assert load_connector_class("sql") is SQLConnector


def test_an_unknown_connector_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown connector 'mainframe'; installed.*sql"):
        load_connector_class("mainframe")
    spec = SystemSpec(connector="mainframe", identifiers=["email"])
    with pytest.raises(ConfigError, match="system 'ledger': unknown connector"):
        build("ledger", spec)


def test_a_connector_can_be_named_by_import_path() -> None:
    assert load_connector_class("connectors.sql:SQLConnector") is SQLConnector
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_connector_class("connectors.sql:NoSuchConnector")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_connector_class("no_such_package.module:Connector")
    with pytest.raises(ConfigError, match="is not a Connector class"):
        load_connector_class("connectors.registry:build")


def test_build_validates_the_systems_config() -> None:
    config = {"url": "sqlite://", "tables": [{"name": "customers"}]}
    spec = SystemSpec(connector="sql", identifiers=["email"], config=config)
    with pytest.raises(ConfigError, match=r"system 'crm'.*\n  tables.0.key: Field required"):
        build("crm", spec)


def test_build_all_skips_systems_out_of_scope_unless_named() -> None:
    datamap = parse(DATAMAP)
    built = build_all(datamap)
    assert list(built) == ["crm"] and built["crm"].system == "crm"
    assert list(build_all(datamap, ["analytics"])) == ["analytics"]
    with pytest.raises(ConfigError, match="not in the data map: billing"):
        build_all(datamap, ["crm", "billing"])
    for connector in built.values():
        connector.close()
