"""The provision ledger through the real broker: records arrive on ``dsr.provisions``, a
``third_party_records`` response lists only those in retention and labels the
out-of-scope flow, a ``third_party_stop`` stops the recipient, after which a new
provision to it is rejected; the worker's timer purges the expired record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from services.client import Watcher
from services.delivery.encrypted import open_package_storage
from services.delivery.package import read_package
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.ledger.models import AuditEntry
from services.provisions.store import ProvisionStore
from streams import topics
from tests.integration.fixtures import joined_stack, settings_for, wait_for
from tests.services.provisions.fixtures import provision

pytestmark = pytest.mark.integration

EXPIRED_AT = datetime(2021, 1, 1, tzinfo=UTC).isoformat()


def test_provision_records_answered_stopped_and_purged_through_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_PROVISION_PURGE_INTERVAL_S", "1")
    settings = settings_for(tmp_path)
    records = [
        provision("kept", TARO),
        provision("expired", TARO, recorded_at=EXPIRED_AT, provided_on="2020-12-01"),
        provision("entrusted", TARO, flow="entrustment", basis=None, consent=None),
    ]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        submitter = stack.submitter()
        for body in records:
            submitter.submit(json.dumps(body).encode(), topics.PROVISIONS)
        submitter.submit(b'{"schema_version": "1.0", "record_id": "bad"}', topics.PROVISIONS)
        submitter.producer.flush()
        store = ProvisionStore(ledger.engine)
        wait_for("the records to be stored", lambda: len(store.records_of(TARO)) == 2, 30)

        submitter.submit_all([json.dumps(event("tpr-1", "third_party_records", TARO)).encode()])
        seen = watcher.collect(lambda s: len(s) >= 2, timeout_s=60)
        stop = event("stop-1", "third_party_stop", TARO, grounds=["provided_without_consent"])
        submitter.submit_all([json.dumps(stop).encode()])
        seen += watcher.collect(lambda s: len(s) >= 1, timeout_s=60)
        later = provision("later", TARO, provided_on="2026-12-01")
        submitter.submit(json.dumps(later).encode(), topics.PROVISIONS)
        submitter.producer.flush()
        seen += watcher.collect(lambda s: len(s) >= 1, timeout_s=60)
        purged = wait_for("the worker to purge the expired record", lambda: _purges(ledger), 30)
        submitter.close()
        watcher.close()

    responses = {b["request_id"]: b for t, b in seen if t == topics.RESPONSES}
    rejected = [b for t, b in seen if t == topics.REJECTED]
    assert [r["reason_code"] for r in rejected] == ["schema_violation", "provision_stopped"]

    answer = responses["tpr-1"]
    assert answer["status"] == "completed"
    outcome = {s["system"]: s for s in answer["systems"]}["provision_ledger"]
    assert (outcome["status"], outcome["records"]) == ("ok", 2)
    package = read_package(open_package_storage(settings), "tpr-1")  # sealed at rest
    provisions_csv = package["provision_ledger/provisions.csv"].decode("utf-8-sig")
    flows_csv = package["provision_ledger/out_of_scope_flows.csv"].decode("utf-8-sig")
    assert "kept" in provisions_csv and "expired" not in provisions_csv
    assert "entrusted" in flows_csv and "委託 / Entrustment" in flows_csv
    assert "entrusted" not in provisions_csv

    stopped = {s["system"]: s for s in responses["stop-1"]["systems"]}["provision_ledger"]
    assert (stopped["status"], stopped["changed"]) == ("ok", 1)
    assert sum(a.detail["count"] for a in purged) == 1
    remaining = ProvisionStore(ledger.engine).records_of(TARO, now=datetime(2000, 1, 1, tzinfo=UTC))
    assert sorted(r.record_id for r in remaining) == ["entrusted", "kept"]  # "expired" is gone
    ledger.close()


def _purges(ledger: Ledger) -> list[AuditEntry]:
    with ledger.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "records_purged")))
