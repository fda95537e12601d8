"""Running and watching the pipeline: ``up``, ``ps``, ``health``, ``status``, ``top``,
``reconcile``."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from services.cli.app import app, broker_address, console, err
from services.cli.views import STAGE_COLUMNS, _print_topic_drift
from services.settings import load as load_settings


@app.command()
def up(
    workers: Annotated[int, typer.Option(help="Faust worker processes.")] = 1,
    runners: Annotated[int, typer.Option(help="Connector runner processes.")] = 1,
) -> None:
    """Start the broker (if embedded), the workers, the connector runners and the dashboard."""
    from services.console import ConsoleServer
    from services.dashboard import Dashboard
    from services.datamap import DataMapError
    from services.logs import configure_logging
    from services.processes import HomeInUse
    from services.stack import Stack
    from services.supervisor import Supervisor

    settings = load_settings()
    if not settings.datamap_path.exists():
        err.print(f"[red]No data map at {settings.datamap_path}.[/] Set DSR_DATAMAP.")
        raise typer.Exit(2)
    configure_logging(settings.log_level)
    stack = Stack(settings, workers=workers, runners=runners)
    dashboard: Dashboard | None = None
    ops: ConsoleServer | None = None
    # SIGINT too: a shell starts a background job with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored, so `dsr up &` would otherwise never stop on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        try:
            stack.start()
        except HomeInUse as exc:
            err.print(f"[red]{exc}[/]", highlight=False)
            raise typer.Exit(1) from None
        except DataMapError as exc:
            err.print(f"[red]The data map does not load.[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        console.print(
            f"Kafka: [bold]{stack.bootstrap}[/]"
            f"{' (embedded)' if stack.broker else ''}  ledger: {settings.database_url_masked}"
        )
        console.print(
            f"Signed intake: producer keys in {settings.signing_keys_path}"
            if settings.require_signatures
            else "[yellow]Signed intake is off[/] (DSR_REQUIRE_SIGNATURES=false)",
            highlight=False,
        )
        _print_topic_drift(stack.topic_drift)
        metrics = "  ".join(f"{name} {url}" for name, url in stack.metrics_urls.items())
        console.print(f"Metrics: {metrics}", soft_wrap=True, highlight=False)
        dashboard = Dashboard.start(
            settings.database_url, settings.dashboard_port, home=settings.home
        )
        console.print(f"Dashboard: [bold]{dashboard.url}[/]", highlight=False)
        ops = ConsoleServer.start(settings, stack.bootstrap, settings.console_port)
        console.print(
            f"Privacy-ops console: [bold]{ops.url}[/] (users: `dsr console add-user`)",
            highlight=False,
        )
        # Supervised from the start: a process that dies before it has joined is restarted.
        supervisor = Supervisor(
            stack,
            frozen_after_s=settings.restart_frozen_after_s,
            unstarted_after_s=settings.restart_unstarted_after_s,
        )
        console.print(
            f"Joined in {stack.wait_joined(supervise=supervisor.tick):.1f}s. A process that "
            "dies is restarted; Ctrl-C or SIGTERM stops everything."
        )
        while True:
            supervisor.tick()
            time.sleep(0.25)
    except KeyboardInterrupt:
        console.print("Stopping…")
    finally:
        if dashboard:
            dashboard.stop()
        if ops:
            ops.stop()
        stack.stop()


@app.command()
def ps() -> None:
    """The processes `dsr up` supervises: running or not, restarts, crash loops."""
    from services import heartbeat
    from services.processes import read_processes

    home = load_settings().home
    body = read_processes(home)
    if body is None:
        err.print("`dsr up` is not running here (no run/processes.json under DSR_HOME).")
        raise typer.Exit(1)
    beats = heartbeat.read(home)
    table = Table("process", "pid", "running", "heartbeat", "restarts", "last exit", "crash loop")
    for name, p in body["processes"].items():
        beat = beats.get(name)
        age = beat.age() if beat and beat.pid == p["pid"] else None
        table.add_row(
            name,
            str(p["pid"] or ""),
            "yes" if p["running"] else "[red]no[/]",
            "" if name == "broker" else "-" if age is None else f"{age:.0f}s ago",
            str(p["restarts"]),
            "" if p["last_exit"] is None else str(p["last_exit"]),
            "[red]yes[/]" if p["crash_loop"] else "no",
        )
    console.print(table)


@app.command()
def health(
    names: Annotated[
        list[str] | None, typer.Argument(help="Processes to check; default: all that beat.")
    ] = None,
    max_age: Annotated[float, typer.Option(help="Seconds a heartbeat stays fresh.")] = 30.0,
) -> None:
    """Exit 0 when the processes' loops are beating (a readiness and liveness probe)."""
    from services import heartbeat

    found = heartbeat.problems(load_settings().home, names or [], max_age)
    for line in found:
        err.print(line, highlight=False)
    if found:
        raise typer.Exit(1)
    console.print("healthy")


@app.command()
def status(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Show where a request is: its stages with their durations, and its timeline."""
    from services.status import request_status

    report = request_status(load_settings(), request_id)
    if report is None:
        err.print(f"No request {request_id!r} in the ledger.")
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(report, default=str))
        return
    console.print(
        f"[bold]{request_id}[/]  {report['kind']}  [bold]{report['status']}[/]"
        f"{'  (' + report['hold_reason'] + ')' if report['hold_reason'] else ''}"
        f"  deadline {report['deadline']}"
    )
    stages = Table("stage", "starts at", "took", "status", "detail", title="Stages")
    for st in report["stages"]:
        extra = {k: v for k, v in st.items() if k not in STAGE_COLUMNS and v not in (None, "")}
        stages.add_row(
            st["stage"],
            f"+{st['start_ms']} ms",
            f"[bold]{st['duration_ms']} ms[/]",
            st["status"],
            " ".join(f"{k}={v}" for k, v in extra.items()),
        )
    console.print(stages)
    if report.get("parked"):
        why = report["parked"]
        console.print(
            f"[red]parked[/] by the {why['stage']} at {why['at']}: {why['error_code']} "
            f"at {why['where']} (was {why['was']}); `dsr park release {request_id}` "
            "once the cause is fixed",
            highlight=False,
            soft_wrap=True,
        )
    errors = [t for t in report["tasks"] if t["error"] and t["status"] != "not_applicable"]
    for t in errors:
        console.print(f"[red]{t['system']}:[/] {t['error']}", highlight=False)
    timeline = Table("at", "+ms", "actor", "action", "detail", title="Timeline")
    for e in report["timeline"]:
        timeline.add_row(
            e["at"],
            str(e["since_start_ms"]),
            e["actor"],
            e["action"],
            json.dumps(e["detail"], ensure_ascii=False)[:80],
        )
    console.print(timeline)


@app.command()
def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    once: Annotated[bool, typer.Option(help="Print one frame and exit.")] = False,
) -> None:
    """Live view of requests in flight, the slowest systems and the latencies (Ctrl-C quits)."""
    from rich.console import Group
    from rich.live import Live

    from services.heartbeat import supervised
    from services.ledger import Ledger
    from services.monitoring.overview import overview
    from services.top import render

    settings = load_settings()
    ledger = Ledger(settings.database_url)

    def frame() -> Group:
        return render(overview(ledger) | {"processes": supervised(settings.home)})

    try:
        if once:
            console.print(frame())
            return
        with Live(frame(), console=console, screen=True) as live:
            while True:
                time.sleep(interval)
                live.update(frame())
    except KeyboardInterrupt:
        pass
    finally:
        ledger.close()


@app.command()
def reconcile(
    since: Annotated[
        str | None,
        typer.Option(
            help="When the lost messages began (ISO 8601, UTC unless it says): the "
            "responses sent and the notices owed since then are sent again."
        ),
    ] = None,
) -> None:
    """After the broker lost its messages: re-drive every open request from the ledger."""
    from services.datamap import load as load_datamap
    from services.ledger import Ledger, as_utc
    from services.reconcile import reconcile as run_reconcile

    settings = load_settings()
    try:
        lost_since = as_utc(datetime.fromisoformat(since)) if since else None
    except ValueError:
        err.print(f"--since: not an ISO 8601 time: {since!r}")
        raise typer.Exit(2) from None
    with Ledger(settings.database_url) as ledger:
        done = run_reconcile(
            broker_address(settings),
            ledger,
            load_datamap(settings.datamap_path),
            lost_since=lost_since,
            replication=settings.topic_replication,
            min_isr=settings.topic_min_isr,
        )
    _print_topic_drift(done.drift)
    console.print(f"Re-drove {done.redriven} open request(s) from the ledger.")
    if lost_since is not None:
        console.print(
            f"{done.responses} response(s) to be sent again by the workers; "
            f"{done.notices} notice(s) queued again (those sent already are not sent twice)."
        )
