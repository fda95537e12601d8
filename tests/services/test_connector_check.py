"""``dsr connector check``: each system's connector built and checked, failures per system."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.connector_check import check_datamap
from streams.records import Kind

GOOD = """
subject_identifiers: [email]
systems:
  crm:
    connector: sql
    identifiers: [email]
    discovers: [customer_id]
    kinds: [disclosure, erasure]
    config:
      url: sqlite:///{db}
      tables:
        - name: customers
          key: {{column: email, identifier: email}}
          identifiers: {{customer_id: id}}
          erasure: {{strategy: delete}}
  orders:
    connector: sql
    identifiers: [customer_id]
    config:
      url: sqlite:///{db}
      tables: [{{name: orders, key: {{column: customer_id, identifier: customer_id}}}}]
  analytics:
    connector: mainframe
    identifiers: [email]
    excluded: pseudonymised
"""

BAD = """
systems:
  crm:
    connector: sql
    identifiers: [email]
    config:
      url: sqlite:///{db}
      tables: [{{name: customers, key: {{column: email, identifier: email}}}}]
  billing:
    connector: mainframe
    identifiers: [email]
    config: {{token: "${{DSR_TEST_UNSET_TOKEN}}"}}
  broken:
    connector: sql
    identifiers: [email]
    config: {{url: "sqlite:///{db}", tables: [{{name: customers}}]}}
  missing:
    connector: sql
    identifiers: [email]
    config:
      url: sqlite:///{db}
      tables: [{{name: invoices, key: {{column: email, identifier: email}}}}]
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "systems.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER)")
    return path


def write(tmp_path: Path, template: str, db: Path) -> Path:
    path = tmp_path / "datamap.yaml"
    path.write_text(template.format(db=db))
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["connector", "check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_good_data_map_reports_every_system(tmp_path: Path, db: Path) -> None:
    code, out = run("--datamap", str(write(tmp_path, GOOD, db)))

    assert code == 0, out
    assert "crm (sql)  ok\n" in out
    assert "  identifiers: email; discovers customer_id\n" in out
    assert "  kinds:       disclosure, erasure\n" in out  # narrowed by the data map
    assert "  check:       1 tables match the config\n" in out
    assert "orders (sql)  ok\n" in out
    assert "analytics (mainframe)  skipped\n" in out  # excluded: never built
    assert out.rstrip().endswith("every system is ready")


def test_a_bad_system_is_reported_and_the_others_still_checked(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSR_TEST_UNSET_TOKEN", raising=False)
    code, out = run("--datamap", str(write(tmp_path, BAD, db)))

    assert code == 1
    assert "Traceback" not in out
    assert "crm (sql)  ok\n" in out
    assert "billing (mainframe)  FAILED\n" in out
    assert "config:      system 'billing': unknown connector 'mainframe'" in out
    assert "broken (sql)  FAILED\n" in out
    assert "config:      system 'broken': invalid sql connector config\n" in out
    assert "tables.0.key: Field required" in out
    assert "missing (sql)  FAILED\n" in out
    assert "table 'invoices' does not exist" in out
    assert "note:        ${DSR_TEST_UNSET_TOKEN} is not set in the environment" in out
    assert out.rstrip().endswith("3 of 4 systems failed: billing, broken, missing")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("systems: [unclosed", "not valid YAML"),
        ("systems: {crm: {connector: sql}}", "systems.crm.identifiers: Field required"),
    ],
)
def test_an_invalid_data_map_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "datamap.yaml"
    path.write_text(text)
    code, out = run("--datamap", str(path))
    assert code == 1
    assert out.startswith("data map error\n")
    assert message in out


def test_a_missing_data_map_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run("--datamap", str(tmp_path / "nowhere.yaml"))
    assert code == 1 and "cannot read data map" in out


def test_the_default_data_map_comes_from_the_settings(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_DATAMAP", str(write(tmp_path, GOOD, db)))
    code, out = run()
    assert code == 0, out


def test_the_report_is_data_too(tmp_path: Path, db: Path) -> None:
    report = check_datamap(write(tmp_path, BAD, db))
    assert not report.ok and report.error is None
    by_name = {s.system: s for s in report.systems}
    assert by_name["crm"].ok and by_name["crm"].kinds == ["disclosure"]
    assert not by_name["billing"].built and not by_name["billing"].ok
    assert by_name["missing"].built and not by_name["missing"].ok


def test_a_kind_no_system_answers_is_a_warning_not_a_failure(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path, GOOD, db)
    report = check_datamap(path)
    # crm is narrowed to disclosure and erasure; orders only discloses; analytics is out
    assert report.ok
    assert report.unanswerable == [
        Kind.THIRD_PARTY_RECORDS,
        Kind.CORRECTION,
        Kind.SUSPENSION,
        Kind.THIRD_PARTY_STOP,
    ]
    code, out = run("--datamap", str(path))
    assert code == 0, out
    assert "warning: no system answers correction requests" in out
    assert "warning: no system answers disclosure requests" not in out
    assert "warning: no system answers erasure requests" not in out
    assert "warning: no system answers purpose_notification" not in out  # by a disclosure
    assert out.rstrip().endswith("every system is ready")


HASHED = """
systems:
  crm:
    connector: sql
    identifiers: [email]
    config:
      url: sqlite:///{db}
      tables:
        - name: contacts
          key: {{column: email, identifier: email}}
          erasure: {{columns: {columns}}}
"""


@pytest.mark.parametrize(
    ("columns", "short"),
    [
        ("{phone: hash, email: hash}", "phone"),  # VARCHAR(20): the digest would not fit
        ("{email: hash, note: hash, code: hash}", None),  # VARCHAR(64), TEXT, no length
    ],
)
def test_a_hash_column_too_short_for_the_digest_is_reported(
    tmp_path: Path, columns: str, short: str | None
) -> None:
    path = tmp_path / "contacts.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email VARCHAR(64), "
            "phone VARCHAR(20), note TEXT, code VARCHAR)"
        )
    datamap = tmp_path / "datamap.yaml"
    datamap.write_text(HASHED.format(db=path, columns=columns))

    code, out = run("--datamap", str(datamap))

    if short is None:
        assert code == 0, out
        return
    assert code == 1 and "crm (sql)  FAILED\n" in out
    assert f"contacts.{short}: cannot hash it:" in out and "64 characters" in out
    assert "contacts.email" not in out
