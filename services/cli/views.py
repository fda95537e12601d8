"""How the CLI shows responses, reports and drift: rich tables and lines."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from services.cli.app import console, err


def _print_response(body: dict[str, Any]) -> None:
    status = body.get("status")
    colour = {"completed": "green", "partially_completed": "yellow"}.get(str(status), "red")
    console.print(
        f"[bold]{body.get('request_id')}[/] r{body.get('revision', 1)}  {body.get('kind')} "
        f"({str(body.get('regulation', '')).upper()})  [{colour}]{status}[/]  "
        f"completed {body.get('completed_at')}  deadline {body.get('deadline')}",
        highlight=False,
    )
    for s in body.get("systems") or []:
        said = s.get("outcome") or s.get("status")
        counts = ("records", "changed", "kept", "pending_purge")
        extra = "".join(f" {name}={s[name]}" for name in counts if s.get(name))
        console.print(f"  {s.get('system')}: {said}{extra}", markup=False, highlight=False)
    for r in body.get("reasons") or []:
        where = f" ({r['system']})" if r.get("system") else ""
        console.print(f"  [{r.get('code')}]{where} {r.get('message')}", markup=False)
    for name in ("package", "letter"):
        if body.get(name):
            console.print(f"  {name}: {body[name]}", markup=False, highlight=False)


STAGE_COLUMNS = ("stage", "start_ms", "duration_ms", "status")


def _print_topic_drift(drift: list[str]) -> None:
    for line in drift:
        err.print(f"[yellow]Topic differs from the expected settings:[/] {line}", highlight=False)


SHORT = {
    "ok": "ok",
    "not_applicable": "n/a",
    "refused": "withheld",
    "failed": "FAILED",
    "timed_out": "TIMED OUT",
}


def _print_report(r: dict[str, Any]) -> None:
    console.print(_requests_table(r["requests"]))
    _print_outputs(r["requests"], r["home"])
    for rej in r["rejected"]:
        console.print(
            f"rejected ([bold]{rej['reason_code']}[/]): "
            + "; ".join(": ".join(filter(None, [e.get("loc"), e["msg"]])) for e in rej["errors"])
        )
    for c in r["checks"]:
        console.print(f"{'[green]ok[/]  ' if c['ok'] else '[red]FAIL[/]'} {c['check']}")
    for e in r["errors"]:
        console.print(f"[red]error:[/] {e}")
    lat = r["latency_ms"]
    console.print(
        f"workers joined in {r['worker_join_s']} s · submit → response: "
        f"p50 {lat['p50']} ms, max {lat['max']} ms · files under {r['home']}"
    )
    console.print("[green bold]demo passed[/]" if r["ok"] else "[red bold]demo FAILED[/]")


def _requests_table(requests: list[dict[str, Any]]) -> Table:
    """The demo's requests: each one's status (against the expected), systems and time."""
    table = Table("request", "status", "systems", "ms")
    for q in requests:
        expected = q["status"] == q["expected"]
        status = q["status"] if expected else f"{q['status']} (expected {q['expected']})"
        systems = ", ".join(
            f"{name} {SHORT.get(st, st)}"
            for name, st in (s.split(":") for s in q["systems"].split(", ") if s)
        )
        table.add_row(
            q["kind"] + (f"\n[dim]{q['note']}[/]" if q["note"] else ""),
            f"[{'green' if expected else 'red'}]{status}[/]",
            systems or "—",
            f"{q['latency_ms'] or '—'}",
        )
    return table


def _print_outputs(requests: list[dict[str, Any]], home: str) -> None:
    """Where each request's package or letter is, or its reasons."""
    for q in requests:
        if q["output"].startswith("file://"):
            where = q["output"].removeprefix("file://" + home + "/")
            if where.endswith("letter.html"):
                where += ", " + where.removesuffix(".html") + ".pdf"
            console.print(f"[dim]{q['kind']}:[/] {where}")
        elif q["output"]:
            console.print(f"[dim]{q['kind']} reasons:[/] {q['output']}")
    if any(q["output"].startswith("file://") for q in requests):
        console.print(
            f"[dim]Read a package with[/] DSR_HOME={home} dsr package open REQUEST_ID "
            "[dim](local packages are sealed at rest unless DSR_ENCRYPT_PACKAGES=false)[/]",
            highlight=False,
            soft_wrap=True,
        )
