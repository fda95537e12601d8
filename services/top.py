"""``dsr top``: the dashboard's figures as a live terminal view."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 120_000:
        return f"{value / 1000:.1f} s"
    if value < 7_200_000:
        return f"{value / 60_000:.0f} min"
    return f"{value / 3_600_000:.1f} h" if value < 172_800_000 else f"{value / 86_400_000:.1f} d"


def render(o: dict[str, Any], rows: int = 15) -> Group:
    """One frame: headline figures, systems slowest first, kinds, the oldest requests,
    the overdue ones, and the supervised processes when ``o`` has them."""
    rate = o["failure_rate"]
    overdue = len(o["deadlines"]["overdue"])
    headline = Text.assemble(
        ("dsr top", "bold"),
        f"  in flight {o['in_flight']['total']}",
        f"  ·  completed {rate['completed']} in {o['window_s'] // 60} min",
        ("  ·  not fully completed ", ""),
        (f"{rate['requests']:.1%}", "red" if rate["requests"] else ""),
        "  ·  task failures ",
        (f"{rate['tasks']:.1%}", "red" if rate["tasks"] else ""),
        "  ·  overdue ",
        (str(overdue), "bold red" if overdue else ""),
    )
    systems = Table(
        "system",
        "p50",
        "p95",
        "p99",
        "tasks",
        "failed",
        "redriven",
        "waiting",
        title=f"Systems, slowest first ({o['task_time']})",
    )
    for s in o["systems"]:
        systems.add_row(
            s["system"],
            ms(s["p50"]),
            ms(s["p95"]),
            ms(s["p99"]),
            str(s["n"]),
            f"{s['failed']} ({s['failure_rate']:.0%})",
            str(s["redriven"]),
            str(s["waiting"]),
            style="red" if s["failed"] else None,
        )
    kinds = Table("kind", "p50", "p95", "p99", "done", title="Kinds (intake → response)")
    for k in o["kinds"]:
        kinds.add_row(k["kind"], ms(k["p50"]), ms(k["p95"]), ms(k["p99"]), str(k["n"]))
    by_status = "  ".join(f"{k}: {v}" for k, v in sorted(o["in_flight"]["by_status"].items()))
    in_flight = Table(
        "request", "kind", "waiting on", "age", "deadline", title=f"In flight  {by_status}"
    )
    for r in o["in_flight"]["requests"][:rows]:
        late = r["deadline"] < o["generated_at"]
        in_flight.add_row(
            r["request_id"],
            r["kind"],
            r["waiting_on"],
            ms(r["age_ms"]),
            r["deadline"][:16].replace("T", " "),
            style="red" if late else None,
        )
    late = Table("request", "kind", "regulation", "deadline", "late by", title="Overdue")
    for r in o["deadlines"]["overdue"][:rows]:
        late.add_row(
            r["request_id"],
            r["kind"],
            r["regulation"],
            r["deadline"][:16].replace("T", " "),
            ms(r["overdue_ms"]),
            style="red",
        )
    frames: list[Any] = [headline, systems, kinds, in_flight]
    if overdue:
        frames.append(late)
    if o.get("processes"):
        procs = Table("process", "state", "heartbeat", "restarts", title="Processes")
        for p in o["processes"]:
            age = p["heartbeat_age_s"]
            procs.add_row(
                p["name"],
                p["state"],
                "-" if age is None else f"{age:.0f} s ago",
                str(p["restarts"]),
                style=None if p["state"] == "running" else "bold red",
            )
        frames.append(procs)
    return Group(*frames)
