"""The pipeline's context: a data map that leaves a request kind unanswered is a warning."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from services.datamap import parse, unanswerable_kinds
from services.settings import Settings
from streams.context import Pipeline
from streams.records import Kind

DATAMAP = """
systems:
  crm:
    connector: sql
    identifiers: [email]
    config:
      url: sqlite:///{db}
      tables:
        - name: customers
          key: {{column: email, identifier: email}}
          erasure: {{strategy: delete}}
  archive:
    connector: sql
    identifiers: [email]
    excluded: anonymised
    config:
      url: sqlite:///{db}
      tables:
        - name: customers
          key: {{column: email, identifier: email}}
          correctable: [name]
"""


def test_kinds_no_system_answers_are_logged_when_the_pipeline_loads_its_data_map(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "systems.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
    path = tmp_path / "datamap.yaml"
    path.write_text(DATAMAP.format(db=db))
    settings = Settings(home=tmp_path, datamap_override=str(path), require_signatures=False)
    with caplog.at_level(logging.WARNING, logger="dsr.pipeline"):
        pipeline = Pipeline.from_settings(settings)
    pipeline.close()
    warned = {r.kind for r in caplog.records if hasattr(r, "kind")}  # type: ignore[attr-defined]
    # crm discloses and erases; the archive could correct, but it is out of scope
    assert warned == {"third_party_records", "correction", "suspension", "third_party_stop"}
    assert all(r.levelno == logging.WARNING for r in caplog.records if hasattr(r, "kind"))


def test_unanswerable_kinds_follow_the_data_maps_narrowing() -> None:
    datamap = parse(
        """
systems:
  crm: {connector: sql, identifiers: [email], kinds: [erasure]}
  orders: {connector: sql, identifiers: [email]}
"""
    )
    supported = {
        "crm": {Kind.DISCLOSURE, Kind.ERASURE}.__contains__,
        "orders": {Kind.CORRECTION}.__contains__,
    }
    assert unanswerable_kinds(datamap, supported) == [
        Kind.PURPOSE_NOTIFICATION,
        Kind.DISCLOSURE,
        Kind.THIRD_PARTY_RECORDS,
        Kind.SUSPENSION,
        Kind.THIRD_PARTY_STOP,
    ]
    # a system whose connector was not built answers nothing
    assert Kind.CORRECTION in unanswerable_kinds(datamap, {"crm": {Kind.ERASURE}.__contains__})
