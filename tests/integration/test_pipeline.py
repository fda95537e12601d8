"""Whole-pipeline runs through the real broker, workers and connector runners."""

from __future__ import annotations

import json
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from services.client import Submitter, Watcher
from services.delivery.encrypted import open_package_storage
from services.delivery.package import read_package
from services.demo import run as demo_run
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.settings import Settings
from services.signing import Signer
from streams import topics
from tests.fixtures.databases import make_url
from tests.fixtures.ledger_reads import rejected_events
from tests.integration.fixtures import joined_stack, settings_for, wait_for, with_crm

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_kind_reaches_its_expected_status(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo scenario: all seven kinds, a held-and-released request, a refusal, a
    malformed event; and the sample systems really changed. Nothing is written outside
    its home."""
    elsewhere = tmp_path / "working-directory"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    home = tmp_path / "home"
    for url in make_url(backend, tmp_path):
        settings = Settings(home=home, kafka_bootstrap=None, database_url_override=url)
        report = demo_run.run(settings, timeout_s=90)
        assert list(elsewhere.iterdir()) == []
        result = report.as_dict()
        assert result["errors"] == []
        statuses = {
            r["kind"] + ":" + r["request_id"].rsplit("-", 1)[-1]: r["status"]
            for r in result["requests"]
        }
        assert all(r["status"] == r["expected"] for r in result["requests"]), statuses
        assert all(c["ok"] for c in result["checks"]), result["checks"]
        assert {
            "metrics: a latency histogram for every kind",
            "signed intake: an unsigned erasure is rejected, never run",
        } < {c["check"] for c in result["checks"]}
        assert sorted(r["reason_code"] for r in result["rejected"]) == [
            "schema_violation",
            "unsigned",
        ]
        kinds = {r["kind"] for r in result["requests"]}
        assert len(kinds) == 7
        ledger = Ledger(url)
        held = ledger.timeline(
            next(r["request_id"] for r in result["requests"] if r["kind"] == "third_party_records")
        )
        decisions = [e.action for e in held if e.action != "notified"]
        assert decisions[:3] == ["received", "hold", "released"]
        told = sorted(e.detail["purpose"] for e in held if e.action == "notified")
        assert told == ["hold", "response"]  # the principal heard of the hold, then the answer
        ledger.close()


def test_disclosure_package_holds_the_subjects_data_only(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        email = {"method": "electronic", "address": "taro@example.jp"}
        raw = json.dumps(event("pkg-1", "disclosure", TARO, delivery=email)).encode()
        submitter.submit_all([raw])
        [(_, response)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=60)
        # the notices agent tells the principal, once (Arts. 32(3), 33(3))
        outbox = tmp_path / "outbox" / "pkg-1"
        ledger = Ledger(settings.database_url)

        def audited(action: str) -> bool:
            return any(e.action == action for e in ledger.timeline("pkg-1"))

        wait_for("the notice", lambda: audited("notified"), timeout=30)
        submitter.submit_all([raw])  # a redelivered request changes nothing
        wait_for("the redelivery to be seen", lambda: audited("duplicate_ignored"), timeout=30)
        submitter.close()
        watcher.close()
    assert [p.name for p in outbox.iterdir()] == ["pkg-1:response:1.eml"]
    notice = message_from_bytes((outbox / "pkg-1:response:1.eml").read_bytes(), policy=default)
    assert notice["To"] == "taro@example.jp"
    assert notice["Message-ID"] == "<pkg-1/response/1@localhost>"
    assert [e.detail["notice_id"] for e in ledger.timeline("pkg-1") if e.action == "notified"] == [
        "pkg-1:response:1"
    ]
    ledger.close()
    assert response["status"] == "completed"
    package = read_package(open_package_storage(settings), "pkg-1")  # sealed at rest
    assert response["package"].endswith("/responses/pkg-1/data.json")
    text = json.dumps(json.loads(package["data.json"]), ensure_ascii=False)
    assert "taro@example.jp" in text and "Green tea set" in text
    assert "hanako@example.jp" not in text and "Rice cooker" not in text


FAILING_DATAMAP = with_crm(
    """
  broken:
    connector: sql
    identifiers: [email]
    config:
      url: "sqlite:///${DSR_HOME}/crm.db"
      tables:
        - name: no_such_table
          key: {column: email, identifier: email}
""",
    timeout_s=60,
)


def test_a_failing_system_gives_a_partial_response_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "2")
    settings = settings_for(tmp_path, FAILING_DATAMAP)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.DEAD_LETTER])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(event("fail-1", "disclosure", TARO)).encode()])
        seen = watcher.collect(lambda s: any(t == topics.RESPONSES for t, _ in s), 60)
        submitter.close()
        watcher.close()
    [response] = [body for t, body in seen if t == topics.RESPONSES]
    assert response["status"] == "partially_completed"
    outcome = {s["system"]: s for s in response["systems"]}
    assert outcome["crm"]["status"] == "ok"
    assert outcome["broken"]["status"] == "failed"
    assert outcome["broken"]["error"]
    assert any(r["system"] == "broken" for r in response["reasons"])


def test_workers_keep_running_after_garbage(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        submitter = stack.submitter()
        garbage = [b"\xff\xfe not utf-8", b"{not json", b"[]", b'{"request_id": 5}', b"x" * 300_000]
        forged = [
            json.dumps(event(rid, "erasure", TARO, grounds=["no_longer_needed"])).encode()
            for rid in ("forged-1", "forged-2")
        ]
        # One with no signature at all, one signed with a key the pipeline does not hold.
        for signer, raw in zip([None, Signer("ops", b"not-the-key" * 3)], forged, strict=True):
            forger = Submitter(stack.bootstrap, signer)
            forger.submit_all([raw])
            forger.close()
        submitter.submit_all([*garbage, json.dumps(event("after-1", "disclosure", TARO)).encode()])
        seen = watcher.collect(
            lambda s: (
                sum(t == topics.REJECTED for t, _ in s) >= len(garbage) + len(forged)
                and any(t == topics.RESPONSES for t, _ in s)
            ),
            60,
        )
        assert stack.check_alive() == []
        submitter.close()
        watcher.close()
    reasons = sorted(b["reason_code"] for t, b in seen if t == topics.REJECTED)
    assert reasons == sorted(
        ["invalid_encoding", "invalid_json", "schema_violation", "schema_violation", "too_large"]
        + ["unsigned", "bad_signature"]
    )
    assert [b["status"] for t, b in seen if t == topics.RESPONSES] == ["completed"]
    ledger = Ledger(settings.database_url)
    assert len(rejected_events(ledger)) == len(garbage) + len(forged)
    assert ledger.request("forged-1") is None and ledger.request("forged-2") is None
    ledger.close()
