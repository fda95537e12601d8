"""What the dashboard and ``dsr top`` say of each supervised process, from the
supervisor's report and the processes' own heartbeats."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from services import heartbeat, monitoring
from services.monitoring import REGISTRY
from services.monitoring.overview import TASK_TIME
from services.top import render


def _beat(home: Path, name: str, pid: int, ago: float, every: float | None = None) -> None:
    path = heartbeat.directory(home) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": name, "kind": "runner", "pid": pid, "at": time.time() - ago}
    if every is not None:
        body["every"] = every
    path.write_text(json.dumps(body))


def _supervised(**running: bool) -> dict[str, dict[str, Any]]:
    return {
        name: {"running": up, "pid": 100 + i, "restarts": 0, "crash_loop": False}
        for i, (name, up) in enumerate(running.items())
    }


def test_a_live_process_whose_loop_stopped_beating_is_frozen(tmp_path: Path) -> None:
    report = _supervised(**{"worker-0": True, "runner-0": True, "runner-1": False})
    _beat(tmp_path, "worker-0", 100, ago=1)
    _beat(tmp_path, "runner-0", 101, ago=heartbeat.FROZEN_AFTER_S + 5)
    _beat(tmp_path, "runner-1", 102, ago=heartbeat.FROZEN_AFTER_S + 5)
    states = {p["name"]: p["state"] for p in heartbeat.view(tmp_path, report)}
    assert states == {"worker-0": "running", "runner-0": "frozen", "runner-1": "down"}


def test_each_beat_written_moves_the_process_metric_to_its_time(tmp_path: Path) -> None:
    """``dsr_heartbeat_timestamp_seconds`` (DSRProcessFrozen) says what the beat's file
    says, from the same beat; a turn sooner than half an interval writes neither."""
    heart = heartbeat.Heart(tmp_path, "worker-0", "worker", 60.0, monitoring.record_beat)
    heart.beat()
    written = heartbeat.read(tmp_path)["worker-0"].at
    assert REGISTRY.get_sample_value("dsr_heartbeat_timestamp_seconds") == written
    heart.beat()
    assert REGISTRY.get_sample_value("dsr_heartbeat_timestamp_seconds") == written


def test_a_process_is_frozen_after_missing_as_many_of_its_own_beats(tmp_path: Path) -> None:
    """Beating every 0.5 s, a process is frozen after 3.75 s; a beat that does not say
    its interval has the default one's 15 s."""
    report = _supervised(**{"runner-0": True, "runner-1": True, "runner-2": True})
    _beat(tmp_path, "runner-0", 100, ago=5, every=0.5)
    _beat(tmp_path, "runner-1", 101, ago=5, every=2.0)
    _beat(tmp_path, "runner-2", 102, ago=5)
    states = {p["name"]: p["state"] for p in heartbeat.view(tmp_path, report)}
    assert states == {"runner-0": "frozen", "runner-1": "running", "runner-2": "running"}
    heart = heartbeat.Heart(tmp_path, "worker-0", "worker", interval=0.5)
    heart.beat()
    assert heartbeat.read(tmp_path)["worker-0"].every == 0.5


def test_a_beat_from_an_earlier_process_of_the_same_name_is_not_its_beat(
    tmp_path: Path,
) -> None:
    """Restarted: the old pid's stale beat must not make the new process look frozen."""
    _beat(tmp_path, "runner-0", 99, ago=300)
    [shown] = heartbeat.view(tmp_path, _supervised(**{"runner-0": True}))
    assert shown["state"] == "running" and shown["heartbeat_age_s"] is None


def test_a_crash_loop_is_shown_as_such(tmp_path: Path) -> None:
    report = _supervised(**{"runner-0": False})
    report["runner-0"] |= {"crash_loop": True, "restarts": 6}
    [shown] = heartbeat.view(tmp_path, report)
    assert shown["state"] == "crash loop" and shown["restarts"] == 6


def test_the_supervised_view_reads_what_dsr_up_wrote(tmp_path: Path) -> None:
    assert heartbeat.supervised(tmp_path) == []
    (tmp_path / "run").mkdir()
    report = _supervised(**{"worker-0": True})
    (tmp_path / "run" / "processes.json").write_text(json.dumps({"processes": report}))
    _beat(tmp_path, "worker-0", 100, ago=0)
    [shown] = heartbeat.supervised(tmp_path)
    assert shown["name"] == "worker-0" and shown["state"] == "running"
    assert shown["heartbeat_age_s"] is not None and shown["heartbeat_age_s"] < 5


def test_dsr_top_lists_the_overdue_requests_and_a_frozen_runner() -> None:
    frame = {
        "failure_rate": {"completed": 3, "requests": 0.0, "tasks": 0.0},
        "window_s": 900,
        "task_time": TASK_TIME,
        "systems": [],
        "kinds": [],
        "in_flight": {"total": 2, "by_status": {"fanned_out": 2}, "requests": []},
        "generated_at": "2026-12-03T10:00:00+00:00",
        "deadlines": {
            "overdue": [
                {
                    "request_id": "late-7",
                    "kind": "erasure",
                    "regulation": "appi",
                    "deadline": "2026-12-01T09:00:00+00:00",
                    "overdue_ms": 2 * 86_400_000,
                }
            ],
            "days": [],
        },
        "processes": [
            {"name": "runner-0", "state": "frozen", "heartbeat_age_s": 42.0, "restarts": 0},
            {"name": "worker-0", "state": "running", "heartbeat_age_s": 1.0, "restarts": 1},
        ],
    }
    console = Console(width=160, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(frame))
    text = console.export_text()
    assert "overdue 1" in text
    overdue = text[text.index("Overdue") :]
    assert "late-7" in overdue and "erasure" in overdue and "2.0 d" in overdue
    assert "runner-0" in text and "frozen" in text and "42 s ago" in text
