"""Erasures through a broker killed mid-burst: every erasure's effect is checked in every
system's own data, and nobody else's data is touched.

Each principal has a look-alike: the same name, phone and address under another email and
customer id, with orders and shipments of their own. Only the principal's rows may change.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from services.demo.scenario import event
from services.ledger import Ledger
from tests.fixtures.ledger_reads import count_by_status
from tests.integration.fixtures import (
    DEMO_DATAMAP,
    assert_erased,
    joined_stack,
    principal,
    seed_lookalikes,
    settings_for,
    wait_for,
    wait_supervised,
)

pytestmark = pytest.mark.integration

N = 40
FINAL = ("completed", "partially_completed", "failed", "refused")


def test_erasures_through_a_killed_broker_leave_no_data_behind(tmp_path: Path) -> None:
    # The demo's 60 s request timeout would cut off requests slowed by the broker's loss;
    # this test is about their effects, so it gives them the time a deployment would.
    datamap = DEMO_DATAMAP.read_text().replace(
        "request_timeout_seconds: 60", "request_timeout_seconds: 900"
    )
    assert "request_timeout_seconds: 900" in datamap
    settings = settings_for(tmp_path, datamap)
    seed_lookalikes(tmp_path, N)
    requests = [
        json.dumps(
            event(f"erase-{i}", "erasure", principal(i), grounds=["no_longer_needed"])
        ).encode()
        for i in range(N)
    ]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        submitter = stack.submitter()
        submitter.submit_all(requests)
        submitter.close()
        # Kill the broker once some erasures are done and others are in flight.
        wait_for("three erasures done", lambda: count_by_status(ledger).get("completed", 0) >= 3)
        assert stack.broker is not None
        stack.broker.process.send_signal(signal.SIGKILL)
        stack.broker.process.wait()
        stack.restart_broker()
        wait_supervised(
            "every erasure answered",
            stack,
            lambda: sum(count_by_status(ledger).get(s, 0) for s in FINAL) >= N,
            240,
        )
    statuses = {}
    for i in range(N):
        response = ledger.response(f"erase-{i}")
        assert response is not None
        statuses[i] = response.body["status"]
        actions = [e.action for e in ledger.timeline(f"erase-{i}")]
        assert actions.count("completed") == 1, (i, actions)
    ledger.close()
    for i in range(N):
        assert_erased(tmp_path, i)
    assert set(statuses.values()) == {"completed"}, statuses
