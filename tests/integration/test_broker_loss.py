"""The broker restarts empty in the middle of a run: nothing admitted is lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.ledger import Ledger
from tests.fixtures.ledger_reads import count_by_status
from tests.integration.fixtures import joined_stack, settings_for

pytestmark = pytest.mark.integration

N = 24


def test_an_empty_broker_restart_loses_no_admitted_request(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    subjects = [TARO, HANAKO, JIRO]
    requests = [
        json.dumps(event(f"loss-{i}", "disclosure", subjects[i % 3])).encode() for i in range(N)
    ]
    ledger = Ledger(settings.database_url)
    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        stack.kill("runner-0")  # so the tasks are still on the broker when it goes
        submitter = stack.submitter()
        submitter.submit_all(requests)
        submitter.close()
        deadline = time.monotonic() + 60
        while count_by_status(ledger) != {"fanned_out": N}:
            assert time.monotonic() < deadline, count_by_status(ledger)
            time.sleep(0.2)

        assert stack.restart_broker() == N  # every task and event in flight is gone
        stack.spawn("runner-0")
        deadline = time.monotonic() + 120
        while count_by_status(ledger) != {"completed": N}:
            assert time.monotonic() < deadline, count_by_status(ledger)
            for name in stack.check_alive():
                stack.spawn(name)
            time.sleep(0.2)
    for i in range(N):
        actions = [e.action for e in ledger.timeline(f"loss-{i}")]
        assert actions.count("completed") == 1, (i, actions)
    ledger.close()
