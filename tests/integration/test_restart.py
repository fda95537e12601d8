"""`dsr up` stopped and started again with requests in flight: its embedded broker
starts empty, and nothing admitted is lost."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from services.client import Submitter
from services.demo.scenario import TARO, event
from services.ledger import Ledger
from services.settings import Settings
from tests.fixtures.ledger_reads import count_by_status
from tests.integration.fixtures import (
    assert_erased,
    assert_package_holds_only,
    dsr_up_process,
    request_for,
    running,
    seed_lookalikes,
    settings_for,
    told,
    wait_for,
)

pytestmark = pytest.mark.integration

PEOPLE = range(6)


def test_requests_waiting_on_their_systems_survive_a_stopped_stack(tmp_path: Path) -> None:
    """With no runner, the tasks wait on the broker when `dsr up` stops; started again
    on an empty broker, every request is re-driven and done: erasures erased, each
    disclosure holding its principal's records only, each completed once."""
    settings = settings_for(tmp_path)
    seed_lookalikes(tmp_path, len(PEOPLE))
    ledger = Ledger(settings.database_url)
    ids = [f"rs-{i}" for i in PEOPLE]
    ccpa = json.dumps(event("rs-ccpa", "disclosure", TARO, regulation="ccpa")).encode()
    with dsr_up_process(tmp_path, "--runners", "0") as up:
        wait_for("the worker to join", lambda: running(tmp_path, "worker-0"))
        bootstrap = (tmp_path / "broker.addr").read_text().strip()
        submitter = Submitter.from_settings(Settings(home=tmp_path), bootstrap)
        submitter.submit_all([*(request_for(i, "rs") for i in PEOPLE), ccpa])
        submitter.close()
        ids.append("rs-ccpa")
        wait_for("the acknowledgement", lambda: told(ledger, "rs-ccpa") == ["acknowledgement"])
        wait_for(
            "every request to wait on its systems", lambda: _statuses(ledger, ids) == {"fanned_out"}
        )
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0

    with dsr_up_process(tmp_path):
        wait_for(
            "every request to be answered",
            lambda: count_by_status(ledger) == {"completed": len(ids)},
            timeout=180,
        )
    # its acknowledgement, owed again when the stack started, was sent already: not again
    assert told(ledger, "rs-ccpa").count("acknowledgement") == 1
    for i, rid in zip(PEOPLE, ids, strict=False):
        actions = [e.action for e in ledger.timeline(rid)]
        assert actions.count("completed") == 1, (rid, actions)
        if i % 2 == 0:
            assert_erased(tmp_path, i)
        else:
            assert_package_holds_only(settings, rid, i, PEOPLE)
    ledger.close()


def _statuses(ledger: Ledger, ids: list[str]) -> set[str]:
    return {row.status if (row := ledger.request(r)) else "missing" for r in ids}
