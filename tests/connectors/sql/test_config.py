"""The SQL config: validation errors, secrets, and the kinds it declares."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from connectors import ConfigError, NotSupported
from connectors.sql import SQLConnector
from services.broker import free_port
from streams.records import Change, Kind
from tests.connectors.fixtures import ALICE, CONFIG, Database


def test_capabilities_follow_the_config(db: Database) -> None:
    assert db.connector().supported_kinds == {
        Kind.DISCLOSURE,
        Kind.CORRECTION,
        Kind.SUSPENSION,
        Kind.ERASURE,
        Kind.THIRD_PARTY_RECORDS,
        Kind.THIRD_PARTY_STOP,
    }

    cfg = db.config()
    del cfg["provision_log"]["stopped_column"]
    for table in cfg["tables"]:
        del table["suspension"], table["correctable"]
    connector = db.connector(cfg)
    assert not connector.supports(Kind.THIRD_PARTY_STOP)
    assert not connector.supports(Kind.SUSPENSION)
    assert connector.supports(Kind.THIRD_PARTY_RECORDS)
    with pytest.raises(NotSupported):
        connector.stop_third_party_provision(ALICE, grounds=["g"])
    with pytest.raises(NotSupported):
        connector.correct(ALICE, [Change(field="name", value="x")])

    del cfg["provision_log"]
    assert not db.connector(cfg).supports(Kind.THIRD_PARTY_RECORDS)

    only_log = {**db.config(), "tables": []}
    connector = db.connector(only_log)
    assert connector.supported_kinds == {Kind.THIRD_PARTY_RECORDS, Kind.THIRD_PARTY_STOP}
    with pytest.raises(NotSupported):
        connector.disclose(ALICE)
    assert connector.third_party_records(ALICE).records


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["tables"][0].pop("key"), "tables.0.key: Field required"),
        (
            lambda c: c["tables"][1]["erasure"].update(columns={"item": "mask"}),
            "either strategy: delete or per-column",
        ),
        (lambda c: c["tables"][0].update(suspension={}), "exactly one of flag_column or move_to"),
        (lambda c: c.update(suspension={"move_to": "x"}), "default suspension"),
        (
            lambda c: c["tables"][0].update(erasure={"columns": {"name": "shred"}}),
            "tables.0.erasure.columns.name",
        ),
        (lambda c: c.update(url="not a url"), "url: Value error, not a SQLAlchemy database URL"),
        (lambda c: c.update(colour="blue"), "colour: Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_system_and_the_field(
    change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    cfg = copy.deepcopy({**CONFIG, "url": "sqlite://"})
    change(cfg)
    with pytest.raises(ConfigError) as caught:
        SQLConnector("crm", cfg)
    assert "system 'crm': invalid sql connector config" in str(caught.value)
    assert message in str(caught.value)


def test_the_password_is_never_shown() -> None:
    url = f"postgresql+psycopg://app:pa55word@127.0.0.1:{free_port()}/crm"
    connector = SQLConnector("crm", {**CONFIG, "url": url, "password": "other-secret"})
    shown = [repr(connector), str(connector), repr(connector.config), str(connector.config)]
    for text in shown:
        assert "pa55word" not in text and "other-secret" not in text
    assert "app:***@127.0.0.1" in repr(connector)

    with pytest.raises(ConfigError) as caught:
        SQLConnector("crm", {**CONFIG, "url": url, "lock_timeout_s": -1})
    assert "pa55word" not in str(caught.value)
    connector.close()


def test_a_password_on_a_sqlite_url_is_a_config_error_not_a_crash() -> None:
    config = {**copy.deepcopy(CONFIG), "url": "sqlite:///:memory:", "password": "s3cret-pw"}
    with pytest.raises(ConfigError, match="system 'crm'") as exc:
        SQLConnector("crm", config)
    assert "s3cret-pw" not in str(exc.value)


def test_the_lock_wait_is_read_under_its_former_name_too() -> None:
    for name in ("lock_timeout_s", "busy_timeout_s"):
        connector = SQLConnector("crm", {**CONFIG, "url": "sqlite://", name: 0.5})
        assert connector.config.lock_timeout_s == 0.5
        connector.close()
