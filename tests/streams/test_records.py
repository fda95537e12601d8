"""The request event contract: the published schema, and what it accepts and refuses."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from services.schemas import render_all
from streams.records import Kind, RequestEvent, TaskResult

SCHEMAS = Path(__file__).parents[2] / "schemas"
EXAMPLES = Path(__file__).parents[2] / "examples" / "requests.jsonl"

VALID: dict[str, Any] = {
    "schema_version": "1.0",
    "request_id": "req-2026-0001",
    "kind": "correction",
    "regulation": "appi",
    "received_at": "2026-11-24T10:00:00+09:00",
    "subject": {"identifiers": {"email": "taro@example.jp", "customer_id": "C-1001"}},
    "requester": {"type": "appointed_agent", "name": "Agent K.K.", "authority_reference": "POA-77"},
    "verification": {"status": "verified", "method": "drivers_licence", "reference": "KYC-1"},
    "delivery": {"method": "written"},
    "fee": {"required": False, "paid": False},
    "correction": {"changes": [{"field": "phone", "value": "090-0000-0000"}]},
}


def with_(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = body
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return body


def test_published_schema_files_are_current() -> None:
    for name, text in render_all().items():
        assert (SCHEMAS / name).read_text() == text, f"{name} is stale: run `dsr schema`"


def test_valid_event_passes_both_pydantic_and_the_published_schema() -> None:
    RequestEvent.model_validate(VALID)
    jsonschema.validate(VALID, json.loads((SCHEMAS / "request-event.v1.json").read_text()))


def test_examples_file_holds_valid_events() -> None:
    lines = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    assert len(lines) >= 7
    assert {RequestEvent.model_validate(e).kind for e in lines} >= {
        "purpose_notification",
        "disclosure",
        "third_party_records",
        "correction",
        "suspension",
        "erasure",
        "third_party_stop",
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (with_("kind", "forget_me"), "kind"),
        (with_("regulation", "pipeda"), "regulation"),
        (with_("schema_version", "2.0"), "schema_version"),
        (with_("received_at", "yesterday"), "received_at"),
        (with_("received_at", "2026-11-24T10:00:00"), "received_at"),  # no offset: ambiguous
        (with_("subject.identifiers", {}), "subject.identifiers"),
        (with_("verification.status", "ok"), "verification.status"),
        (with_("requester.type", "friend"), "requester.type"),
        (with_("delivery.method", "fax"), "delivery.method"),
        (with_("request_id", "has spaces"), "request_id"),
        (with_("correction", KeyError), "correction"),
        (with_("unexpected", 1), "unexpected"),
    ],
)
def test_malformed_events_are_refused_with_the_field_named(
    body: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        RequestEvent.model_validate(body)
    locations = {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}
    assert any(loc.startswith(where) or loc == "" for loc in locations), locations


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("erasure", "a request for erasure"),
        ("suspension", "a request for suspension of use"),
        ("third_party_stop", "a request for stopping third-party provision"),
    ],
)
def test_destructive_kinds_need_grounds(kind: str, words: str) -> None:
    body = with_("kind", kind)
    del body["correction"]
    with pytest.raises(ValidationError, match=f"{words} needs at least one ground"):
        RequestEvent.model_validate(body)
    body["grounds"] = ["no_longer_needed"]
    assert RequestEvent.model_validate(body).grounds == ["no_longer_needed"]


def test_every_kind_has_words_for_a_reason_message() -> None:
    words = {kind: kind.words for kind in Kind}
    assert all(w and w.islower() and "_" not in w for w in words.values()), words
    assert len(set(words.values())) == len(words)


def test_a_task_result_counts_no_more_kept_or_pending_records_than_it_changed() -> None:
    base = {
        "request_id": "r-1",
        "task_id": "r-1:crm:erasure:0",
        "system": "crm",
        "kind": "erasure",
        "status": "ok",
        "started_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert TaskResult.model_validate({**base, "changed": 3, "kept": 3}).kept == 3
    both = TaskResult.model_validate({**base, "changed": 3, "kept": 1, "pending_purge": 2})
    assert (both.kept, both.pending_purge) == (1, 2)
    for bad in (
        {"changed": 1, "kept": 2},
        {"changed": 0, "kept": -1},
        {"changed": 2, "kept": 1, "pending_purge": 2},
        {"changed": 1, "pending_purge": 2},
        {"changed": 1, "pending_purge": -1},
    ):
        with pytest.raises(ValidationError, match="kept|pending_purge"):
            TaskResult.model_validate({**base, **bad})
