"""A correction's report (``CorrectionReport``): typed on the wire, and read from results
recorded, or connectors written, before it had a field of its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from services.schemas import render_all
from streams.records import CorrectionReport, FieldChange, Kind, TaskResult

STARTED = datetime(2026, 12, 1, tzinfo=UTC)


def result(kind: Kind, **fields: Any) -> TaskResult:
    return TaskResult(
        request_id="r-1",
        task_id="r-1:crm",
        system="crm",
        kind=kind,
        status="ok",
        started_at=STARTED,
        **fields,
    )


def test_a_report_names_what_is_missing_and_what_may_not_be_corrected() -> None:
    report = CorrectionReport.of(
        [{"table": "customers", "field": "name", "old": "A", "new": "B", "rows": 2}],
        wanted=["name", "points", "shoe_size"],
        held={"name", "points"},
        correctable={"name"},
    )
    assert report.changes == [
        FieldChange(table="customers", field="name", old="A", new="B", rows=2)
    ]
    assert report.not_found == ["shoe_size"]
    assert report.not_correctable == ["points"]
    assert report.changed == ["name"]


def test_reports_of_several_lookups_merge_each_entry_once() -> None:
    one = CorrectionReport(changes=[FieldChange(field="name", old="A", new="B")], not_found=["x"])
    two = CorrectionReport(
        changes=[FieldChange(field="name", old="A", new="B"), FieldChange(field="tel", new="1")],
        not_found=["x", "y"],
        not_correctable=["z"],
    )
    merged = one.merge(two)
    assert [c.field for c in merged.changes] == ["name", "tel"]
    assert merged.not_found == ["x", "y"] and merged.not_correctable == ["z"]


def test_a_report_in_the_older_details_keys_is_read_as_typed() -> None:
    older = result(
        Kind.CORRECTION,
        details={
            "changes": [{"table": "customers", "field": "name", "old": "A", "new": "B"}, "tel"],
            "not_found": [{"table": "orders", "field": "fax"}],
            "not_correctable": ["points"],
            "tables": ["customers"],
        },
    )
    assert older.correction == CorrectionReport(
        changes=[
            FieldChange(table="customers", field="name", old="A", new="B"),
            FieldChange(field="tel"),
        ],
        not_found=["fax"],
        not_correctable=["points"],
    )
    assert older.details == {"tables": ["customers"]}  # the system's own account stays


def test_other_kinds_keep_their_details_as_they_are() -> None:
    erased = result(Kind.ERASURE, details={"changes": ["kept as the system wrote it"]})
    assert erased.correction is None
    assert erased.details == {"changes": ["kept as the system wrote it"]}


def test_the_published_schema_accepts_a_typed_report() -> None:
    schema = json.loads(render_all()["task-result.v1.json"])
    typed = result(
        Kind.CORRECTION,
        correction=CorrectionReport(changes=[FieldChange(field="name", old="A", new="B")]),
    )
    jsonschema.validate(typed.model_dump(mode="json"), schema)
    bad = {**typed.model_dump(mode="json"), "correction": {"changes": [{"old": "A"}]}}
    with pytest.raises(jsonschema.ValidationError, match="'field' is a required property"):
        jsonschema.validate(bad, schema)
