"""The provisions handler: records stored once, malformed and stopped ones rejected with a
reason, and a third_party_records response built from the ledger (rules 9 and 16)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from services import monitoring
from services.delivery.package import read_package
from services.demo.scenario import TARO, event
from services.ledger.models import AuditEntry
from services.monitoring import REGISTRY
from services.provisions.store import ProvisionStore
from streams import topics
from streams.agents import aggregate, fanout, intake
from streams.agents.provisions import handle_provision
from streams.context import Pipeline
from streams.records import ResponseEvent
from tests.fixtures.ledger_reads import rejected_events
from tests.services.provisions.fixtures import as_digests, digest, provision
from tests.streams.agents.fixtures import body, opened, run_tasks, to

TARO_DIGEST = digest("email:taro@example.jp")


def send(p: Pipeline, record: dict[str, Any] | bytes) -> list[Any]:
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    return handle_provision(p, raw)


def respond(p: Pipeline, request_id: str, kind: str, **extra: Any) -> ResponseEvent:
    """Submit a request for Taro and play every stage and connector until it is answered."""
    intake.handle_request(p, json.dumps(event(request_id, kind, TARO, **extra)).encode())
    out = fanout.handle_accepted(p, request_id)
    responses = to(topics.RESPONSES, out)
    while results := run_tasks(p, out):
        out = [o for raw in results for o in aggregate.handle_result(p, raw)]
        responses += to(topics.RESPONSES, out)
    [response] = responses
    return ResponseEvent.model_validate(body(response))


def test_a_record_is_stored_once_and_a_resend_changes_nothing(pipeline: Pipeline) -> None:
    assert send(pipeline, provision("p-1", TARO)) == []
    assert send(pipeline, provision("p-1", TARO)) == []
    assert [r.record_id for r in ProvisionStore(pipeline.ledger.engine).records_of(TARO)] == ["p-1"]


def test_malformed_provision_events_go_to_the_rejected_topic(pipeline: Pipeline) -> None:
    missing_basis = provision("p-2", TARO, basis=None)
    for raw, code in (
        (b"{not json", "invalid_json"),
        (json.dumps(missing_basis).encode(), "schema_violation"),
    ):
        [out] = send(pipeline, raw)
        assert out.topic == topics.REJECTED
        rejected = body(out)
        assert rejected["reason_code"] == code
        assert "taro@example.jp" not in json.dumps(rejected["errors"])
    assert [r.reason_code for r in rejected_events(pipeline.ledger)] == [
        "invalid_json",
        "schema_violation",
    ]


def test_after_a_stop_a_later_provision_is_rejected(pipeline: Pipeline) -> None:
    send(pipeline, provision("p-1", TARO))
    response = respond(pipeline, "stop-1", "third_party_stop", grounds=["provided_without_consent"])
    ledger_outcome = {s.system: s for s in response.systems}["provision_ledger"]
    assert (ledger_outcome.status, ledger_outcome.changed) == ("ok", 1)

    [out] = send(pipeline, provision("p-later", TARO, provided_on="2026-12-01"))

    assert out.topic == topics.REJECTED and out.key == b"p-later"
    assert body(out)["reason_code"] == "provision_stopped"
    # the record goes to the rejected topic as digests, never with the identifiers sent
    assert "taro@example.jp" not in out.value.decode()
    kept = opened(pipeline, body(out))
    assert json.loads(kept)["subject"] == {"digests": [TARO_DIGEST]}
    labels = {"reason_code": "provision_stopped"}
    before = REGISTRY.get_sample_value("dsr_provisions_refused_total", labels) or 0.0
    assert out.record is not None and not out.resend
    monitoring.record_sent(out.record)  # as the worker does the first time a record goes
    assert REGISTRY.get_sample_value("dsr_provisions_refused_total", labels) == before + 1
    refused = [e for e in pipeline.ledger.timeline("stop-1") if e.action == "provision_stopped"]
    assert refused[0].detail["recipients"] == ["Acme Logistics K.K."]


def test_a_conflicting_record_is_rejected_in_its_digest_form(pipeline: Pipeline) -> None:
    send(pipeline, provision("p-1", TARO))
    [out] = send(pipeline, provision("p-1", TARO, items=["phone"]))
    assert body(out)["reason_code"] == "record_id_conflict"
    assert "taro@example.jp" not in out.value.decode()
    assert TARO_DIGEST in opened(pipeline, body(out)).decode()


def test_a_refusal_read_again_is_audited_once_and_one_sent_again_twice(
    pipeline: Pipeline,
) -> None:
    send(pipeline, provision("p-1", TARO))
    conflicting = json.dumps(provision("p-1", TARO, items=["phone"])).encode()
    for place in ("dsr.provisions/0/7", "dsr.provisions/0/7", "dsr.provisions/0/9"):
        [out] = handle_provision(pipeline, conflicting, place=place)
        assert body(out)["reason_code"] == "record_id_conflict"  # each time it is read

    with pipeline.ledger.session() as s:
        refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "provision_refused"))
        trail = [(e.detail["record_id"], e.detail["raw_sha256"]) for e in refused]
    digest = hashlib.sha256(conflicting).hexdigest()
    assert trail == [("p-1", digest)] * 2  # the message at offset 7 once, and at 9
    kept = [(r.reason_code, r.raw_sha256, r.place) for r in rejected_events(pipeline.ledger)]
    assert kept == [
        ("record_id_conflict", digest, "dsr.provisions/0/7"),
        ("record_id_conflict", digest, "dsr.provisions/0/9"),
    ]


def test_a_record_sent_as_digests_is_listed_by_third_party_records(pipeline: Pipeline) -> None:
    assert send(pipeline, as_digests(provision("by-digest", TARO), TARO_DIGEST)) == []

    response = respond(pipeline, "tpr-1", "third_party_records")

    assert response.status == "completed" and response.package
    package = read_package(pipeline.storage, "tpr-1")
    assert "by-digest" in package["provision_ledger/provisions.csv"].decode("utf-8-sig")


def test_the_records_package_omits_expired_records_and_labels_other_flows(
    pipeline: Pipeline,
) -> None:
    expired = datetime(2021, 1, 1, tzinfo=UTC).isoformat()
    send(pipeline, provision("kept", TARO))
    send(pipeline, provision("expired", TARO, recorded_at=expired, provided_on="2020-12-01"))
    send(pipeline, provision("entrusted", TARO, flow="entrustment", basis=None, consent=None))

    response = respond(pipeline, "tpr-1", "third_party_records")

    assert response.status == "completed" and response.package
    package = {k: v.decode("utf-8-sig") for k, v in read_package(pipeline.storage, "tpr-1").items()}
    assert "expired" not in package["data.json"]
    assert "kept" in package["provision_ledger/provisions.csv"]
    flows = package["provision_ledger/out_of_scope_flows.csv"]
    assert "entrusted" in flows and "委託 / Entrustment" in flows
    assert "entrusted" not in package["provision_ledger/provisions.csv"]
