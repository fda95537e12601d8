"""Holds, deadlines and operators' decisions through the real broker: a GDPR request held
for verification is extended, then released, and its response carries the extension and
the new deadline; an APPI request held for verification is refused on an Art. 33(2)
ground; an APPI disclosure held for its fee is released when paid; a CCPA request is
acknowledged and due 45 days after it arrived."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.client import Watcher
from services.demo.scenario import TARO, event
from services.ledger import Ledger, as_utc
from streams import topics
from tests.fixtures.ledger_reads import status_of
from tests.integration.fixtures import joined_stack, settings_for, told, wait_for

pytestmark = pytest.mark.integration


def test_a_gdpr_extension_reaches_the_principal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path)
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    verified = event("gdpr-ext-1", "disclosure", TARO, regulation="gdpr")
    pending = {**verified, "verification": {"status": "pending", "method": "email_link"}}
    appi = event("appi-ref-1", "disclosure", TARO)
    appi["verification"] = {"status": "pending", "method": "email_link"}
    unpaid = event("appi-fee-1", "disclosure", TARO, fee={"required": True, "amount_jpy": 1000})
    paid = {**unpaid, "fee": {"required": True, "paid": True, "amount_jpy": 1000}}
    arrived = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    ccpa = event("ccpa-1", "disclosure", TARO, regulation="ccpa", received_at=arrived.isoformat())
    ids = ["gdpr-ext-1", "appi-ref-1", "appi-fee-1"]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES, topics.REJECTED])
        submitter = stack.submitter()
        submitter.submit_all([json.dumps(e).encode() for e in (pending, appi, unpaid, ccpa)])
        wait_for("the requests held", lambda: {status_of(ledger, r) for r in ids} == {"held"}, 30)
        row = ledger.request("gdpr-ext-1")
        first_deadline = as_utc(row.deadline_at)

        extended = CliRunner().invoke(
            app, ["extend", "gdpr-ext-1", "--reason", "Many systems to search.", "--by", "op-1"]
        )
        # the command waits for the worker to record it, and says what it did
        assert extended.exit_code == 0, extended.output
        assert "Extended gdpr-ext-1: the deadline is now" in extended.output
        assert ledger.request("gdpr-ext-1").extensions
        # an APPI-style second extension is refused, with its reason, on the rejected
        # topic, and the command fails saying why
        again = CliRunner().invoke(
            app, ["extend", "gdpr-ext-1", "--reason", "again", "--by", "op-1"]
        )
        assert again.exit_code == 1, again.output
        assert "already_extended" in again.output
        refused = CliRunner().invoke(
            app,
            ["refuse", "appi-ref-1", "--ground", "harm_to_principal_or_third_party"]
            + ["--reason", "It would reveal a third party's complaint.", "--by", "op-2"],
        )
        assert refused.exit_code == 0, refused.output
        assert "Refused appi-ref-1 (harm_to_principal_or_third_party)" in refused.output
        submitter.submit_all([json.dumps(verified).encode(), json.dumps(paid).encode()])
        seen = watcher.collect(
            lambda s: sorted(t for t, _ in s) == [topics.REJECTED] + [topics.RESPONSES] * 4,
            timeout_s=60,
        )
        # the notices agent runs behind the responses: wait for the notices themselves
        wait_for("ccpa-1's acknowledgement", lambda: "acknowledgement" in told(ledger, "ccpa-1"))
        wait_for("gdpr-ext-1's response notice", lambda: "response" in told(ledger, "gdpr-ext-1"))
        submitter.close()
        watcher.close()
    responses = {b["request_id"]: b for t, b in seen if t == topics.RESPONSES}
    # the CCPA clock: 45 days from arrival, on the response
    assert responses["ccpa-1"]["status"] == "completed"
    assert datetime.fromisoformat(responses["ccpa-1"]["deadline"]) == arrived + timedelta(days=45)
    # the fee-gated disclosure waited for its payment, then was answered
    assert responses["appi-fee-1"]["status"] == "completed"
    fee_trail = [e for e in ledger.timeline("appi-fee-1") if e.action in ("hold", "released")]
    assert [(e.action, e.detail.get("reason_code")) for e in fee_trail] == [
        ("hold", "fee_unpaid"),
        ("released", None),
    ]
    response = responses["gdpr-ext-1"]
    assert responses["appi-ref-1"]["status"] == "refused"
    [ground] = responses["appi-ref-1"]["reasons"]
    assert ground["code"] == "harm_to_principal_or_third_party"
    assert ground["message"].startswith("Art. 33(2)(i)")
    [rejected] = [b for t, b in seen if t == topics.REJECTED]
    assert response["status"] == "completed"
    [extension] = response["extensions"]
    assert extension["reason"] == "Many systems to search."
    assert as_utc(datetime.fromisoformat(extension["previous_deadline"])) == first_deadline
    assert (
        datetime.fromisoformat(extension["deadline"]).month
        == (first_deadline.month + 2 - 1) % 12 + 1
    )
    assert rejected["reason_code"] == "already_extended"
    timeline = ledger.timeline("gdpr-ext-1")
    # the GDPR clock stopped while identity was verified: the deadline moved by that time
    [resumed] = [e for e in timeline if e.action == "clock_resumed"]
    answered_by = datetime.fromisoformat(response["deadline"])
    assert answered_by == datetime.fromisoformat(resumed.detail["deadline"])
    moved = answered_by - datetime.fromisoformat(extension["deadline"])
    assert abs(moved - timedelta(milliseconds=resumed.detail["paused_ms"])) < timedelta(
        milliseconds=1
    )
    actions = [e.action for e in timeline if e.action != "notified"]
    # the hold, the extension and the response were each told to the principal, once
    assert sorted(told(ledger, "gdpr-ext-1")) == ["extension", "hold", "response"]
    # every decision is audited, the refused second extension too (decisions and requests
    # are different topics, so the refusal and the release may come in either order)
    assert actions[:3] == ["received", "hold", "extended"]
    later = actions[3:]
    assert {"clock_resumed", "rejected", "released"} <= set(later)
    assert later.index("clock_resumed") < later.index("released") < later.index("completed")
    ledger.close()
