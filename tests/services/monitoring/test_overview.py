"""The dashboard's figures, from a real ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.ledger import Ledger, TaskPlan
from services.monitoring.overview import Window, overview, quantiles
from streams.records import TaskStatus
from tests.fixtures.ledger_rows import dead_letter, event, finish


def test_quantiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert quantiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert quantiles([]) == {"p50": None, "p95": None, "p99": None}


def test_systems_are_ranked_slowest_first_with_their_failures(ledger: Ledger) -> None:
    for i in range(4):
        finish(
            ledger,
            f"r-{i}",
            {"crm": "ok", "billing": "ok", "erp": "failed"},
            took={"crm": 0.01, "billing": 0.5 + i / 10, "erp": 0.02},
        )
        ledger.complete(f"r-{i}", "partially_completed", {"reasons": []}, latency_ms=1)

    o = overview(ledger)
    assert [s["system"] for s in o["systems"]] == ["billing", "erp", "crm"]
    billing = o["systems"][0]
    assert billing["n"] == 4
    assert billing["p50"] == pytest.approx(600, abs=5)  # of 500, 600, 700 and 800 ms
    assert billing["p99"] == pytest.approx(800, abs=5)
    erp = o["systems"][1]
    assert (erp["failed"], erp["failure_rate"]) == (4, 1.0)
    assert o["failure_rate"] == {
        "requests": 1.0,
        "completed": 4,
        "unsuccessful": 4,
        "tasks": pytest.approx(1 / 3),
    }
    assert [k["kind"] for k in o["kinds"]] == ["disclosure"]
    assert o["kinds"][0]["n"] == 4


def test_a_redrive_keeps_the_failure_in_the_history_and_is_marked(ledger: Ledger) -> None:
    """Failed, dead-lettered, redriven, then ok: the outage stays visible."""
    finish(ledger, "r-1", {"crm": "ok", "orders": "failed"}, took=0.01)
    ledger.complete("r-1", "partially_completed", {"reasons": []}, latency_ms=1)
    letter = dead_letter(ledger, "r-1", "r-1:orders")
    assert ledger.reopen_task("r-1:orders", letter, timedelta(seconds=60)) is None
    [task] = [t for t in ledger.tasks("r-1") if t.system == "orders"]
    assert task.status == TaskStatus.PENDING  # the ledger's row no longer says failed

    orders = {s["system"]: s for s in overview(ledger)["systems"]}["orders"]
    assert (orders["failed"], orders["redriven"], orders["waiting"]) == (1, 1, 1)
    crm = {s["system"]: s for s in overview(ledger)["systems"]}["crm"]
    assert (crm["failed"], crm["redriven"]) == (0, 0)


def test_series_has_one_point_per_step_and_gaps_where_nothing_finished(ledger: Ledger) -> None:
    finish(ledger, "r-1", {"crm": "ok"}, took=0.1)
    ledger.complete("r-1", "completed", {"reasons": []}, latency_ms=1)
    window = Window(span=timedelta(minutes=2), step=timedelta(seconds=10))

    o = overview(ledger, window)
    crm = o["series"]["system"]["crm"]
    assert len(crm) == 12
    assert [p["n"] for p in crm[:-1]] == [0] * 11 and crm[-1]["n"] == 1
    assert crm[0]["p99"] is None and crm[-1]["p99"] == pytest.approx(100, abs=5)
    later = overview(ledger, window, now=datetime.now(UTC) + timedelta(minutes=5))
    assert later["series"]["system"] == {} and later["systems"] == []


def test_in_flight_says_where_each_request_waits(ledger: Ledger) -> None:
    now = datetime.now(UTC).replace(hour=12)  # the two due in 3 days fall on one date
    ledger.admit(event("held"), "hold", "verification_pending", now + timedelta(days=3))
    ledger.admit(event("fanned"), "proceed", None, now - timedelta(hours=1))
    ledger.fan_out(
        "fanned",
        [TaskPlan(f"fanned:{s}", s, "disclosure", 0, TaskStatus.PENDING) for s in ("erp", "crm")],
        timedelta(seconds=60),
    )
    ledger.admit(event("accepted"), "proceed", None, now + timedelta(days=3, hours=1))

    o = overview(ledger, now=now)
    waiting = {r["request_id"]: r["waiting_on"] for r in o["in_flight"]["requests"]}
    assert waiting == {
        "held": "held: verification_pending",
        "fanned": "crm, erp",
        "accepted": "fan-out",
    }
    assert o["in_flight"]["by_status"] == {
        "held: verification_pending": 1,
        "fanned_out": 1,
        "accepted": 1,
    }
    assert {s["system"]: s["waiting"] for s in o["systems"]} == {"crm": 1, "erp": 1}
    # the deadline calendar: one overdue, two due on the same day
    (late,) = o["deadlines"]["overdue"]
    assert late["request_id"] == "fanned" and late["overdue_ms"] >= 3_600_000
    (day,) = o["deadlines"]["days"]
    assert day["date"] == (now + timedelta(days=3)).date().isoformat()
    assert sorted(r["request_id"] for r in day["requests"]) == ["accepted", "held"]


def test_nothing_personal_leaves_the_ledger(ledger: Ledger) -> None:
    finish(ledger, "r-1", {"crm": "ok"}, took=0.1)
    ledger.admit(event("r-2"), "hold", "fee_unpaid", datetime.now(UTC))
    assert "a@example.jp" not in repr(overview(ledger))
