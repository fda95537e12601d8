"""A poison request through the real broker: it is parked, with its reason, the worker
keeps its pid and answers the requests around it, and an operator releases it.

The poison is realistic: a stray file where the request's package directory goes, so
storing its package raises. One such request completes in the aggregate agent; the
other has a system that never answers, so it is the sweeper that times it out and
builds its response (the crash loop first reported: the sweeper died on every start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.client import Watcher
from services.demo.scenario import HANAKO, JIRO, TARO, event
from services.ledger import Ledger
from services.stack import Stack
from streams import topics
from tests.integration.fixtures import (
    SILENT_ARCHIVE,
    answered,
    joined_stack,
    settings_for,
    wait_for,
    with_crm,
)

pytestmark = pytest.mark.integration

DATAMAP = with_crm(SILENT_ARCHIVE, timeout_s=10)
ALICE = {"email": "alice@example.eu"}
BOB = {"email": "bob@example.com"}


def test_poison_requests_are_parked_and_the_worker_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSR_TASK_ATTEMPTS", "1000")  # the archive never answers
    settings = settings_for(tmp_path, DATAMAP)
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.setenv("DSR_DATAMAP", str(settings.datamap_path))
    for poison in ("poison-agg", "poison-sweep"):
        stray = tmp_path / "packages" / "responses" / poison
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_text("left here by hand")
    cli = CliRunner()

    def dsr(*args: str, code: int = 0) -> str:
        result = cli.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    def status(request_id: str) -> dict[str, Any]:
        return json.loads(dsr("status", request_id, "--json"))

    def parked(request_id: str) -> bool:
        ledger = Ledger(settings.database_url)
        try:
            row = ledger.request(request_id)
        finally:
            ledger.close()
        return row is not None and row.status == "parked"

    with joined_stack(settings, log_dir=tmp_path / "logs") as stack:
        worker = stack.pid("worker-0")
        watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
        submitter = stack.submitter()
        # the look-alike neighbours are submitted around the poison, before and after
        submitter.submit_all(
            [
                json.dumps(event("before-1", "disclosure", HANAKO)).encode(),
                json.dumps(event("poison-agg", "disclosure", TARO)).encode(),
                json.dumps(
                    event("poison-sweep", "disclosure", {**JIRO, "phone": "070-5555-6666"})
                ).encode(),
                json.dumps(event("after-1", "disclosure", ALICE)).encode(),
            ]
        )
        wait_for("the aggregate to park", lambda: parked("poison-agg"))
        submitter.submit_all([json.dumps(event("after-2", "disclosure", BOB)).encode()])
        good = {"before-1", "after-1", "after-2"}
        seen = [b for _, b in watcher.collect(lambda s: good <= answered(s), 90)]
        wait_for("the sweeper to park", lambda: parked("poison-sweep"))
        # the sweeper goes on: a request that times out after the park is answered
        probe = {**HANAKO, "phone": "080-3333-4444"}
        submitter.submit_all([json.dumps(event("after-3", "disclosure", probe)).encode()])
        seen += [b for _, b in watcher.collect(lambda s: "after-3" in answered(s), 90)]

        assert stack.check_alive() == [] and stack.pid("worker-0") == worker
        responses = {b["request_id"]: b for b in seen}
        assert sorted(responses) == sorted(good | {"after-3"})  # none for the parked two
        assert len(seen) == len(responses)
        assert all(responses[rid]["status"] == "completed" for rid in good)
        systems = {s["system"]: s["status"] for s in responses["after-3"]["systems"]}
        assert systems == {"crm": "ok", "archive": "timed_out"}

        agg, sweep = status("poison-agg"), status("poison-sweep")
        assert agg["parked"]["stage"] == "aggregate" and agg["parked"]["was"] == "fanned_out"
        assert sweep["parked"]["stage"] == "sweeper"
        for report in (agg, sweep):
            assert report["hold_reason"] == report["parked"]["error_code"]
            assert report["parked"]["where"].startswith("services/")
            assert report["response"] is None
        text = dsr("status", "poison-sweep")
        assert "parked by the sweeper" in text and "dsr park release poison-sweep" in text
        listed = json.loads(dsr("park", "list", "--json"))
        assert sorted(r["request_id"] for r in listed) == ["poison-agg", "poison-sweep"]
        assert parked_count(stack) == 2

        # the operator removes the stray file and releases one: it completes, once
        (tmp_path / "packages" / "responses" / "poison-agg").unlink()
        assert "released: back to fanned_out" in dsr("park", "release", "poison-agg")
        dsr("park", "release", "poison-agg", code=1)  # not parked any more
        released = [b for _, b in watcher.collect(lambda s: "poison-agg" in answered(s), 90)]
        assert [(b["request_id"], b["status"]) for b in released] == [("poison-agg", "completed")]
        assert [r["request_id"] for r in json.loads(dsr("park", "list", "--json"))] == [
            "poison-sweep"
        ]
        assert stack.check_alive() == [] and stack.pid("worker-0") == worker
        submitter.close()
        watcher.close()

    ledger = Ledger(settings.database_url)
    try:
        actions = [e.action for e in ledger.timeline("poison-agg")]
        assert actions.count("parked") == 1 and actions.count("unparked") == 1
        assert actions.count("completed") == 1
        # what the ledger keeps of the failure names no one
        kept = json.dumps([e.detail for e in ledger.timeline("poison-sweep")])
        assert JIRO["email"] not in kept and "070-5555-6666" not in kept
    finally:
        ledger.close()


def parked_count(stack: Stack) -> float:
    """``dsr_requests_parked_total`` summed over stages, from the worker's ``/metrics``."""
    import urllib.request

    with urllib.request.urlopen(stack.metrics_urls["worker-0"]) as reply:  # noqa: S310 - loopback
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("dsr_requests_parked_total{")
    )
