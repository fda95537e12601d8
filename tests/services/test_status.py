"""``dsr status``: a request's stages with their durations, and ``dsr top``'s frame."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services import heartbeat
from services.cli import app
from services.heartbeat import Heart
from services.ledger import Ledger, TaskPlan
from services.settings import Settings
from services.status import request_status
from streams.records import TaskStatus
from tests.fixtures.ledger_rows import event, finish
from tests.integration.fixtures import wait_for


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DSR_HOME", str(tmp_path))
    monkeypatch.delenv("DSR_DATABASE_URL", raising=False)
    settings = Settings(home=tmp_path)
    Ledger(settings.database_url).migrate()
    return settings


def test_a_completed_request_has_every_stage_timed(settings: Settings) -> None:
    ledger = Ledger(settings.database_url)
    finish(ledger, "r-1", {"crm": "ok", "erp": "failed"}, took=0.2)
    ledger.complete("r-1", "partially_completed", {"reasons": []}, latency_ms=1)
    report = request_status(settings, "r-1")
    assert report is not None
    stages = {s["stage"]: s for s in report["stages"]}
    assert list(stages) == ["intake", "system:crm", "system:erp", "aggregation", "total"]
    assert stages["system:erp"]["status"] == "failed"
    assert 190 <= stages["system:crm"]["connector_ms"] <= 210
    total = stages["total"]
    assert total["status"] == "partially_completed"
    for s in report["stages"]:
        assert s["start_ms"] >= 0 and s["duration_ms"] >= 0
        assert s["start_ms"] + s["duration_ms"] <= total["duration_ms"] + 1


def test_a_held_then_released_request_shows_the_hold_and_what_it_waits_on(
    settings: Settings,
) -> None:
    ledger = Ledger(settings.database_url)
    deadline = datetime.now(UTC) + timedelta(days=14)
    ledger.admit(event("r-1", verification={"status": "pending"}), "hold", "fee_unpaid", deadline)
    ledger.admit(event("r-1"), "proceed", None, deadline)
    ledger.fan_out(
        "r-1", [TaskPlan("r-1:crm", "crm", "disclosure", 0, TaskStatus.PENDING)], timedelta(60)
    )
    report = request_status(settings, "r-1")
    assert report is not None
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [
        ("intake", "ok"),
        ("held", "released"),
        ("fan-out", "ok"),
        ("system:crm", "in flight"),  # no runner's heartbeat here to say which
    ]


def _sent(settings: Settings, *systems: str) -> None:
    ledger = Ledger(settings.database_url)
    ledger.admit(event("r-1"), "proceed", None, datetime.now(UTC) + timedelta(days=14))
    plans = [TaskPlan(f"r-1:{s}", s, "disclosure", 0, TaskStatus.PENDING) for s in systems]
    ledger.fan_out("r-1", plans, timedelta(60))
    ledger.close()


def _tasks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["stage"]: s for s in report["stages"] if s["stage"].startswith("system:")}


def test_a_task_no_runner_holds_is_queued_and_one_a_runner_holds_is_running(
    settings: Settings,
) -> None:
    """What a runner's heartbeat says it holds, not the ledger's "sent", tells the two
    apart: a task queued behind a stuck system must not read as running."""
    _sent(settings, "crm", "erp")
    heart = Heart(settings.home, "runner-0", "runner")
    heart.beat()
    heart.working("r-1:crm", "crm", 2)
    wait_for(
        "the task in hand",
        lambda: (request_status(settings, "r-1") or {})["tasks"][0].get("runner"),
    )
    report = request_status(settings, "r-1")
    assert report is not None
    stages = _tasks(report)
    assert stages["system:crm"]["status"] == "running"
    assert stages["system:crm"]["runner"] == "runner-0"
    assert stages["system:crm"]["attempt"] == 2
    assert stages["system:erp"]["status"] == "queued"
    assert {t["system"]: t["state"] for t in report["tasks"]} == {
        "crm": "running",
        "erp": "queued",
    }
    heart.done("r-1:crm")
    wait_for(
        "the task to show queued again",
        lambda: _tasks(request_status(settings, "r-1") or {})["system:crm"]["status"] == "queued",
    )


def test_a_task_held_by_a_frozen_runner_says_so(settings: Settings) -> None:
    _sent(settings, "crm")
    heart = Heart(settings.home, "runner-0", "runner")
    heart.beat()
    heart.working("r-1:crm", "crm", 1)
    path = heartbeat.directory(settings.home) / "runner-0.json"
    wait_for("the heartbeat file", lambda: "r-1:crm" in path.read_text())
    body = json.loads(path.read_text())
    body["at"] -= heartbeat.FROZEN_AFTER_S + 1  # its loop stopped beating
    path.write_text(json.dumps(body))
    report = request_status(settings, "r-1")
    assert report is not None
    assert _tasks(report)["system:crm"]["runner"] == "runner-0 (frozen)"


def test_dsr_status_prints_the_stages(settings: Settings) -> None:
    ledger = Ledger(settings.database_url)
    finish(ledger, "r-1", {"crm": "ok"}, took=0.05)
    ledger.complete("r-1", "completed", {"reasons": []}, latency_ms=1)
    result = CliRunner().invoke(app, ["status", "r-1"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "Stages" in result.output and "system:crm" in result.output
    assert "aggregation" in result.output and " ms" in result.output
    missing = CliRunner().invoke(app, ["status", "nope"])
    assert missing.exit_code == 1


def test_dsr_top_once_prints_the_slowest_systems_and_requests_in_flight(
    settings: Settings,
) -> None:
    ledger = Ledger(settings.database_url)
    due = datetime.now(UTC) + timedelta(days=14)  # not overdue, whatever the day
    took = {"crm": 0.01, "billing": 0.9}
    finish(ledger, "r-1", {"crm": "ok", "billing": "failed"}, took=took, deadline=due)
    ledger.admit(event("r-2"), "hold", "fee_unpaid", datetime.now(UTC) - timedelta(days=2))
    result = CliRunner().invoke(app, ["top", "--once"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    billing = next(i for i, line in enumerate(lines) if "billing" in line)
    crm = next(i for i, line in enumerate(lines) if "│ crm" in line)
    assert billing < crm  # slowest first
    assert "900 ms" in lines[billing] and "1 (100%)" in lines[billing]
    assert any("r-2" in line and "held: fee_unpaid" in line for line in lines)
    assert "overdue 1" in result.output
