"""``dsr``: run the pipeline, submit requests, follow them, and run the demo."""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.settings import Settings
from services.settings import load as load_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="dsr-pipeline: data-subject rights requests, end to end.",
)
console = Console()
err = Console(stderr=True)


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    addr = settings.home / "broker.addr"
    if addr.exists():
        return addr.read_text().strip()
    err.print("[red]No broker:[/] set DSR_KAFKA_BOOTSTRAP, or start one with `dsr up`.")
    raise typer.Exit(2)


@app.command()
def up(
    workers: Annotated[int, typer.Option(help="Faust worker processes.")] = 1,
    runners: Annotated[int, typer.Option(help="Connector runner processes.")] = 1,
) -> None:
    """Start the broker (if embedded), the workers, the connector runners and the dashboard."""
    from services.console import ConsoleServer
    from services.dashboard import Dashboard
    from services.logs import configure_logging
    from services.stack import Stack
    from services.supervisor import Supervisor

    settings = load_settings()
    if not settings.datamap_path.exists():
        err.print(f"[red]No data map at {settings.datamap_path}.[/] Set DSR_DATAMAP.")
        raise typer.Exit(2)
    configure_logging()
    stack = Stack(settings, workers=workers, runners=runners)
    dashboard: Dashboard | None = None
    ops: ConsoleServer | None = None
    # SIGINT too: a shell starts a background job with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored, so `dsr up &` would otherwise never stop on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        stack.start()
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
        console.print(
            f"Joined in {stack.wait_joined():.1f}s. A process that dies is restarted; "
            "Ctrl-C or SIGTERM stops everything."
        )
        supervisor = Supervisor(stack)
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
def submit(file: Annotated[str, typer.Argument(help="JSON lines file, or - for stdin.")]) -> None:
    """Submit request events (one JSON object per line) to the requests topic."""
    from services.client import Submitter

    stream = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
    with stream:
        lines = [line.strip() for line in stream if line.strip()]
    settings = load_settings()
    submitter = Submitter.from_settings(settings, _bootstrap(settings))
    try:
        n = submitter.submit_all(lines)
    finally:
        submitter.close()
    console.print(f"Submitted {n} event(s).")


@app.command()
def responses(
    request: Annotated[
        str | None, typer.Option("--request", help="Only this request's responses.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", help="Keep printing responses as they come (with --request: wait for it)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the responses on dsr.responses: status, outcome per system, reasons and where
    the package or letter is."""
    from services import client

    settings = load_settings()
    found = 0
    try:
        for body in client.responses(_bootstrap(settings), request, follow=follow):
            found += 1
            if as_json:
                print(json.dumps(body, ensure_ascii=False), flush=True)
            else:
                _print_response(body)
    except KeyboardInterrupt:
        return
    if request is not None and not found:
        err.print(f"No response to {request!r} on the topic (yet).")
        raise typer.Exit(1)


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
        extra = f" records={s['records']}" if s.get("records") else ""
        extra += f" changed={s['changed']}" if s.get("changed") else ""
        console.print(f"  {s.get('system')}: {said}{extra}", markup=False, highlight=False)
    for r in body.get("reasons") or []:
        where = f" ({r['system']})" if r.get("system") else ""
        console.print(f"  [{r.get('code')}]{where} {r.get('message')}", markup=False)
    for name in ("package", "letter"):
        if body.get(name):
            console.print(f"  {name}: {body[name]}", markup=False, highlight=False)


@app.command()
def release(
    request_id: str,
    method: Annotated[str | None, typer.Option(help="How the identity was checked.")] = None,
    reference: Annotated[str | None, typer.Option(help="The identity check's reference.")] = None,
    payment_reference: Annotated[
        str | None, typer.Option(help="The fee payment's reference.")
    ] = None,
    authority_reference: Annotated[
        str | None, typer.Option(help="The agent's power of attorney or proof, as a reference.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 30.0,
) -> None:
    """Release a held request with the evidence it waits for (identity verified, fee paid,
    an agent's authority), sent again as intake allows. Waits for the worker to record it;
    exits 1 if it was not released, 2 if nothing recorded it."""
    from services.crypto.sealing import Sealer
    from services.decisions import release as release_request
    from services.ledger import Ledger

    settings = load_settings()
    evidence = {
        "method": method or "",
        "reference": reference or "",
        "payment_reference": payment_reference or "",
        "authority_reference": authority_reference or "",
    }
    with Ledger(settings.database_url, sealer=Sealer.from_settings(settings)) as ledger:
        outcome = release_request(
            settings, _bootstrap(settings), ledger, request_id, evidence, None, wait
        )
    if not outcome.applied:
        err.print(outcome.message, highlight=False)
        raise typer.Exit(1 if outcome.reason_code else 2)
    console.print(outcome.message, highlight=False)


@app.command()
def extend(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why, in words the principal will read.")],
    by: Annotated[str, typer.Option(help="Who decides (an operator id).")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 60.0,
) -> None:
    """Extend an open request's deadline by its regulation's one extension (GDPR two
    months, CCPA 45 days); the reason goes into the response to the principal. Waits
    for the worker to record it; exits 1 if it was rejected, 2 if nothing recorded it."""
    _decide(request_id, "extension", None, reason, by, wait)


@app.command()
def refuse(
    request_id: str,
    ground: Annotated[str, typer.Option(help="A refusal code of the request's regulation.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")],
    by: Annotated[str, typer.Option(help="Who decides (an operator id).")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 60.0,
    system: Annotated[
        str | None, typer.Option(help="Refuse only this system's part of the request.")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Refuse only this field of a disclosure (repeatable)."),
    ] = None,
) -> None:
    """Refuse a request not yet fanned out on one of its regulation's grounds (e.g. the
    APPI's Art. 33(2) harm_to_principal_or_third_party); the response says so. With
    --system or --field, refuse that part only: the response is partially completed,
    with the reason. Waits for the worker to record it; exits 1 if it was rejected (with
    the accepted grounds), 2 if nothing recorded it."""
    _decide(request_id, "refusal", ground, reason, by, wait, system, field or [])


def _decide(
    request_id: str,
    decision: str,
    ground: str | None,
    reason: str,
    by: str,
    wait: float,
    system: str | None = None,
    fields: list[str] | None = None,
) -> None:
    """Send the decision and report what became of it: exit 1 when it was rejected, 2
    when no worker recorded it in time."""
    from services.decisions import decide
    from services.ledger import as_utc
    from streams.records import DecisionEvent

    settings = load_settings()
    event = DecisionEvent.model_validate(
        {
            "request_id": request_id,
            "decision": decision,
            "ground": ground,
            "reason": reason,
            "decided_by": by,
            "system": system,
            "fields": fields or [],
        }
    )
    outcome = decide(settings, _bootstrap(settings), event, wait)
    if outcome is None:
        err.print(
            f"The {decision} of {request_id} was sent, but no worker recorded it within "
            f"{wait:g} s; `dsr status {request_id}` will show it once one does."
        )
        raise typer.Exit(2)
    if not outcome.applied:
        why = "; ".join(e.get("msg", "") for e in outcome.errors) or outcome.reason_code
        err.print(f"[red]Rejected[/] ({outcome.reason_code}): {why}", highlight=False)
        raise typer.Exit(1)
    if decision == "extension":
        row_deadline = outcome.detail.get("deadline")
        shown = as_utc(datetime.fromisoformat(row_deadline)).isoformat() if row_deadline else "?"
        console.print(f"Extended {request_id}: the deadline is now {shown}.", highlight=False)
    elif event.in_part:
        part = " ".join([*([f"system {system}"] if system else []), *(fields or [])])
        console.print(
            f"Refused {part} of {request_id} ({ground}); the rest goes on.", highlight=False
        )
    else:
        console.print(
            f"Refused {request_id} ({ground}); the response goes to the principal.",
            highlight=False,
        )


STAGE_COLUMNS = ("stage", "start_ms", "duration_ms", "status")


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
def reconcile() -> None:
    """After the broker lost its messages: re-drive every open request from the ledger."""
    from services.datamap import load as load_datamap
    from services.ledger import Ledger
    from services.reconcile import reconcile as run_reconcile

    settings = load_settings()
    with Ledger(settings.database_url) as ledger:
        done = run_reconcile(
            _bootstrap(settings),
            ledger,
            load_datamap(settings.datamap_path),
            replication=settings.topic_replication,
            min_isr=settings.topic_min_isr,
        )
    _print_topic_drift(done.drift)
    console.print(f"Re-drove {done.redriven} open request(s) from the ledger.")


def _print_topic_drift(drift: list[str]) -> None:
    for line in drift:
        err.print(f"[yellow]Topic differs from the expected settings:[/] {line}", highlight=False)


demo_app = typer.Typer(
    help="Seed sample systems, submit one request of every kind, and check every outcome.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(demo_app, name="demo")


@demo_app.command("seed")
def demo_seed(
    force: Annotated[
        bool, typer.Option(help="Replace an existing data map and letterhead too.")
    ] = False,
) -> None:
    """Put the demo's sample systems, data map and letterhead in DSR_HOME, for `dsr up`."""
    from services.demo.run import install

    settings = load_settings()
    for path in install(settings, replace_files=force):
        console.print(f"wrote {path}", highlight=False)
    console.print(f"Seeded {settings.home}; start the pipeline on it with `dsr up`.")


@demo_app.callback()
def demo(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
    serve: Annotated[
        bool, typer.Option(help="Keep the pipeline and its dashboard up afterwards (Ctrl-C stops).")
    ] = False,
) -> None:
    """Seed sample systems, submit one request of every kind, and check every outcome."""
    if ctx.invoked_subcommand is not None:
        return
    from services.demo.run import Report, run
    from services.stack import Stack

    def show(report: Report) -> None:
        if as_json:
            print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        else:
            _print_report(report.as_dict())

    def keep_serving(report: Report, stack: Stack) -> None:
        from services.dashboard import Dashboard

        show(report)
        dashboard = Dashboard.start(stack.settings.database_url, stack.settings.dashboard_port)
        console.print(f"Dashboard: [bold]{dashboard.url}[/]", highlight=False)
        for name, url in stack.metrics_urls.items():
            console.print(f"Metrics of {name}: {url}", highlight=False)
        console.print("Client commands (dsr status, top, extend, refuse, submit) reach it with:")
        for line in demo_environment(stack.settings):
            print(line, flush=True)  # plain, to paste into a shell
        console.print("Ctrl-C stops the pipeline.")
        try:
            while not stack.check_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            dashboard.stop()

    if not as_json:
        console.print("Starting the pipeline on embedded defaults…")
    report = run(load_settings(), serve=keep_serving if serve else None)
    if not serve:
        show(report)
    raise typer.Exit(0 if report.ok else 1)


def demo_environment(settings: Settings) -> list[str]:
    """The ``export`` lines that point client commands at a running demo: its home (the
    broker's address, the ledger and the keys live there) and any override it runs with."""
    lines = [f"export DSR_HOME={settings.home}"]
    if settings.database_url_override:
        lines.append(f"export DSR_DATABASE_URL={settings.database_url_override}")
    return lines


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


@app.command()
def schema(
    check: Annotated[bool, typer.Option(help="Fail if the files are stale.")] = False,
    out: Path = Path("schemas"),
) -> None:
    """Write the published JSON Schemas of every event (schemas/*.json)."""
    from services.schemas import render_all

    stale = []
    for name, text in render_all().items():
        path = out / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        err.print(f"stale schemas: {', '.join(stale)}; run `dsr schema`")
        raise typer.Exit(1)


connector_app = typer.Typer(
    no_args_is_help=True, help="Write a connector, and check the data map's connectors."
)
app.add_typer(connector_app, name="connector")
console_app = typer.Typer(help="The privacy-ops console's users.", no_args_is_help=True)
app.add_typer(console_app, name="console")


@console_app.command("add-user")
def console_add_user(
    name: str,
    key_id: Annotated[str, typer.Option(help="The signing key the user's decisions use.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a console user (or replace their key and password); one user per operator key."""
    from services.console.users import UserError, add_user
    from services.signing import Keyring

    settings = load_settings()
    keyring = Keyring.load(settings.signing_keys_path)
    if key_id not in keyring.keys:
        err.print(f"[red]No key {key_id!r}[/] in {settings.signing_keys_path}.", highlight=False)
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = add_user(settings.home / "console-users.json", name, key_id, password)
    except UserError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"Console user {user.name} signs with key {user.key_id}.", highlight=False)


@connector_app.command("new")
def connector_new(
    name: Annotated[str, typer.Argument(help="The connector's name, e.g. billing.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to create it; default ./dsr-connector-NAME.")
    ] = None,
) -> None:
    """Create a connector package that passes the conformance kit before you change it."""
    from rich.markup import escape

    from services.scaffold import Names, ScaffoldError, create

    try:
        root = create(name, directory)
    except ScaffoldError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    names, where = Names.of(name), escape(str(root))
    console.print(
        f"Created {where}: an in-memory example that passes the conformance kit. Next:\n"
        f"  1. cd {where} && pytest\n"
        f"  2. replace each TODO in {names.package}/connector.py with calls to {name}\n"
        f"  3. pytest; pip install -e .; add `connector: {name}` to the data map;"
        " dsr connector check",
        highlight=False,
        soft_wrap=True,
    )


@connector_app.command("check")
def connector_check(
    datamap: Annotated[
        Path | None, typer.Option("--datamap", help="Default: $DSR_DATAMAP or .dsr/datamap.yaml.")
    ] = None,
) -> None:
    """Build each system's connector from the data map and check it reaches its system."""
    from services.connector_check import check_datamap, render

    report = check_datamap(datamap or load_settings().datamap_path)
    for line in render(report):
        console.print(line, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if report.ok else 1)


dlq_app = typer.Typer(
    no_args_is_help=True,
    help="Dead letters: tasks that ran out of attempts, events a worker could not handle.",
)
app.add_typer(dlq_app, name="dlq")

SystemOption = Annotated[str | None, typer.Option("--system", help="Only this system's tasks.")]
RequestOption = Annotated[str | None, typer.Option("--request", help="Only this request's.")]


@dlq_app.command("list")
def dlq_list(
    system: SystemOption = None,
    request: RequestOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """List dead letters from the ledger, oldest first (their original events are not shown)."""
    from services import deadletters
    from services.ledger import Ledger

    with Ledger(load_settings().database_url) as ledger:
        rows = [deadletters.summary(d) for d in deadletters.listed(ledger, system, request)]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(*(rows[0] if rows else ["letter"]), title=f"{len(rows)} dead letter(s)")
    for row in rows:
        table.add_row(*(str(v) if v is not None else "" for v in row.values()))
    console.print(table)


@dlq_app.command("redrive")
def dlq_redrive(
    system: SystemOption = None,
    request: RequestOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go, send nothing.")
    ] = False,
) -> None:
    """Send dead letters back where they came from: each at most once.

    A failed task reopens in the ledger (with its request, if that had completed) and
    runs again; its request then completes with the next response revision."""
    from datetime import timedelta

    from kafka import KafkaProducer

    from services import deadletters
    from services.crypto.sealing import Sealer
    from services.datamap import load as load_datamap
    from services.ledger import Ledger
    from services.signing import Keyring

    settings = load_settings()
    bootstrap = _bootstrap(settings)
    timeout = timedelta(seconds=load_datamap(settings.datamap_path).request_timeout_seconds)
    # a signed event is signed again, by the operator's key: its own signature may be stale
    signer = (
        Keyring.load(settings.signing_keys_path).signer(settings.producer_key_id)
        if settings.require_signatures
        else None
    )
    ledger = Ledger(settings.database_url, Sealer.from_settings(settings))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        letters = deadletters.listed(ledger, system, request)
        done = deadletters.redrive(letters, ledger, producer, timeout, dry_run, signer)
    finally:
        producer.close()
        ledger.close()
    for r in done:
        where = f"→ {r.topic}" if r.topic else f"[yellow]skipped[/]: {r.reason}"
        console.print(f"{r.letter.id}  {r.letter.request_id or '-'}  {where}", highlight=False)
    sent = sum(r.topic is not None for r in done)
    verb = "would be redriven" if dry_run else "redriven"
    console.print(f"{sent} of {len(done)} dead letter(s) {verb}.")


park_app = typer.Typer(
    no_args_is_help=True,
    help="Parked requests: set aside because handling them raised; released by an operator.",
)
app.add_typer(park_app, name="park")


@park_app.command("list")
def park_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """List parked requests, soonest deadline first, with the exception type that parked each."""
    from services import parked
    from services.ledger import Ledger

    with Ledger(load_settings().database_url) as ledger:
        rows = parked.listed(ledger)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(*(rows[0] if rows else ["request_id"]), title=f"{len(rows)} parked request(s)")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@park_app.command("release")
def park_release(
    request_id: str,
    by: Annotated[str, typer.Option(help="Who releases it (audited).")] = "operator",
) -> None:
    """Put a parked request back as it was and send it on again; it is parked again if
    it still raises. Fix the cause first (`dsr status` shows where it raised)."""
    from datetime import timedelta

    from services import parked
    from services.datamap import load as load_datamap
    from services.ledger import Ledger

    settings = load_settings()
    timeout = timedelta(seconds=load_datamap(settings.datamap_path).request_timeout_seconds)
    with Ledger(settings.database_url) as ledger:
        done = parked.release(ledger, _bootstrap(settings), request_id, by, timeout)
    if done.outcome != "released":
        err.print(f"{request_id}: {done.outcome.replace('_', ' ')} (status {done.status})")
        raise typer.Exit(1)
    where = f", sent to {done.sent_to}" if done.sent_to else ""
    console.print(f"{request_id} released: back to {done.status}{where}.", highlight=False)


provisions_app = typer.Typer(
    no_args_is_help=True,
    help="The provision-record ledger (APPI Arts. 29 and 30): import records, purge old ones.",
)
app.add_typer(provisions_app, name="provisions")


@provisions_app.command("import")
def provisions_import(
    file: Annotated[Path, typer.Argument(help="JSON Lines, or CSV with dotted headers.")],
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl, csv, or auto (by the file's suffix).")
    ] = "auto",
) -> None:
    """Import provision records, validated and deduplicated as on the dsr.provisions topic."""
    from services.ledger import Ledger
    from services.provisions.importer import import_file

    if fmt not in ("auto", "jsonl", "csv"):
        err.print(f"[red]Unknown format {fmt!r}[/]: use jsonl, csv or auto.")
        raise typer.Exit(2)
    with Ledger(load_settings().database_url) as ledger:
        ledger.migrate()
        report = import_file(ledger.provisions, file, fmt)
    for r in report.rejected:
        why = "; ".join(": ".join(filter(None, [e.get("loc"), e.get("msg")])) for e in r.errors)
        err.print(f"line {r.line}: [bold]{r.reason_code}[/] {why}", highlight=False)
    console.print(
        f"{report.imported} imported, {report.duplicate} duplicate, "
        f"{len(report.rejected)} rejected."
    )
    raise typer.Exit(1 if report.rejected else 0)


@provisions_app.command("purge")
def provisions_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go, remove nothing.")
    ] = False,
) -> None:
    """Remove provision records past retention; the worker also does this hourly.

    The records of a principal with a pending third_party_records or third_party_stop
    request are kept until it closes. One audit row records how many went."""
    from services.ledger import Ledger

    with Ledger(load_settings().database_url) as ledger:
        done = ledger.provisions.purge(dry_run=dry_run)
    verb = "would be purged" if dry_run else "purged"
    console.print(
        f"{done.purged} record(s) past retention {verb}; {done.held} kept while a request "
        "about their principal is pending."
    )


audit_app = typer.Typer(no_args_is_help=True, help="The append-only audit trail.")
app.add_typer(audit_app, name="audit")


@audit_app.command("purge")
def audit_purge(
    older_than_months: Annotated[
        int, typer.Option("--older-than-months", help="Delete entries older than this (>= 24).")
    ],
    by: Annotated[str, typer.Option("--by", help="Who purges: recorded in the trail.")],
) -> None:
    """Delete audit entries past their retention; entries under 24 months are always kept."""
    from services.ledger import Ledger
    from services.rules.policy import add_months
    from streams.records import utcnow

    ledger = Ledger(load_settings().database_url)
    try:
        ledger.migrate()
        count = ledger.purge_audit(add_months(utcnow(), -older_than_months), f"operator:{by}")
    except ValueError as exc:
        err.print(f"[red]Not purged[/]: {exc}")
        raise typer.Exit(2) from None
    finally:
        ledger.close()
    console.print(f"{count} audit entr{'y' if count == 1 else 'ies'} purged.")


package_app = typer.Typer(
    no_args_is_help=True, help="Response packages: hand them to the principal."
)
app.add_typer(package_app, name="package")


@package_app.command("link")
def package_link(
    request_id: str,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="A file of the package: data.json, letter.pdf, manifest.json or "
            "SYSTEM/TABLE.csv. Default: letter.pdf for a letter, else data.json.",
        ),
    ] = None,
    expires_minutes: Annotated[
        int | None,
        typer.Option(
            "--expires-minutes",
            help="Minutes the link works, at most 7 days; default DSR_PACKAGE_LINK_TTL_S.",
        ),
    ] = None,
) -> None:
    """Print an expiring link to a file of a completed request's package (S3 storage only)."""
    from datetime import timedelta

    from rich.markup import escape

    from services.delivery.encrypted import open_package_storage
    from services.delivery.links import NoPackage
    from services.delivery.links import package_link as make_link
    from services.delivery.storage import LinkUnsupported, StorageError
    from services.ledger import Ledger

    settings = load_settings()
    seconds = settings.package_link_ttl_s if expires_minutes is None else expires_minutes * 60
    ledger = Ledger(settings.database_url)
    try:
        storage = open_package_storage(settings)
        url = make_link(ledger, storage, request_id, file=file, expires=timedelta(seconds=seconds))
    except (LinkUnsupported, ValueError) as exc:
        err.print(f"[red]No link[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except (NoPackage, StorageError) as exc:
        err.print(f"[red]No link[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        ledger.close()
    print(url)  # plain: a long URL must not be wrapped


@package_app.command("open")
def package_open(
    request_id: str,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Where to write the files; default <DSR_HOME>/opened/ID."),
    ] = None,
) -> None:
    """Decrypt a request's package into a directory, to deliver it, and list its files."""
    from rich.markup import escape

    from services.crypto import CryptoError, KeyDestroyed, check_key_id
    from services.delivery.encrypted import open_package_storage
    from services.delivery.package import read_package
    from services.delivery.storage import ObjectNotFound, StorageError
    from services.files import write_atomic

    settings = load_settings()
    try:
        check_key_id(request_id)
        files = read_package(open_package_storage(settings), request_id)
    except KeyDestroyed:
        err.print(
            f"[red]Cannot open {escape(request_id)}[/]: its data key was destroyed when its "
            f"retention ended ({settings.package_retention_days} days after completion), "
            "so its package can no longer be read.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    except ObjectNotFound:
        err.print(f"[red]No package for {escape(request_id)}[/].", highlight=False)
        raise typer.Exit(1) from None
    except (CryptoError, StorageError, ValueError) as exc:
        err.print(
            f"[red]Cannot open {escape(request_id)}[/]: {escape(str(exc))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    dest = to or settings.home / "opened" / request_id
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, data in files.items():
        # names were read as storage keys (relative, no ".."); files are 0600
        write_atomic(dest / name, data)
        console.print(f"{len(data):>10}  {escape(name)}", highlight=False)
    console.print(f"{len(files)} file(s) written to {escape(str(dest))}", highlight=False)


keys_app = typer.Typer(
    no_args_is_help=True,
    help="Package data keys (destroyed when retention ends), producer signing keys and "
    "the pipeline's key pair.",
)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init() -> None:
    """Make what a deployment's processes share, where absent: the master key, the
    pipeline's key pair (its public key exported for producers) and a producers' keyring
    with one key that may send everything. Safe to run again; `dsr up` does it itself."""
    from services.crypto.public import export_for_producers
    from services.signing import Keyring

    settings = load_settings()
    if settings.require_signatures:
        Keyring.ensure(settings.signing_keys_path)
    public = export_for_producers(settings)
    console.print(
        f"Pipeline public key {public.key_id} in {settings.pipeline_public_key_path}; "
        f"keyring {settings.signing_keys_path}.",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("producers")
def keys_producers() -> None:
    """Show each producer signing key's owner and what it may send (never its secret).
    Permissions are set in the keyring file (DSR_SIGNING_KEYS); see the README."""
    from rich.markup import escape

    from services.signing import Keyring, KeyringError

    settings = load_settings()
    try:
        keyring = Keyring.load(settings.signing_keys_path)
    except KeyringError as exc:
        console.print(escape(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for key_id in sorted(keyring.keys):
        may = keyring.permissions(key_id)
        console.print(
            f"{escape(key_id)}  owner={escape(may.owner)}  "
            f"requests={','.join(sorted(may.requests)) or '-'}  "
            f"releases={'yes' if may.releases else 'no'}  "
            f"decisions={'yes' if may.decisions else 'no'}  "
            f"provisions={escape(','.join(sorted(may.provisions)) or '-')}"
            + ("" if key_id in keyring.grants else "  (bare secret: the default)"),
            highlight=False,
            soft_wrap=True,
        )


@keys_app.command("public")
def keys_public(
    new: Annotated[
        bool, typer.Option("--new", help="Make a new key pair first (rotation).")
    ] = False,
    retire: Annotated[
        str | None,
        typer.Option(help="Destroy this old key id's private key; nothing sealed to it opens."),
    ] = None,
) -> None:
    """Print the pipeline's newest public key for producers (also written to
    DSR_PIPELINE_PUBLIC_KEY, default DSR_KEYS_DIR/pipeline.pub). See docs/operations.md."""
    from services.crypto import LocalKeyProvider
    from services.crypto.public import PipelineKeys, export_for_producers

    settings = load_settings()
    keys = PipelineKeys(LocalKeyProvider.from_settings(settings))
    if new:
        keys.create()
    if retire is not None and not keys.retire(retire):
        err.print(f"No pipeline key {retire!r}.", markup=False, highlight=False)
        raise typer.Exit(1)
    print(export_for_producers(settings).export())


@keys_app.command("shred")
def keys_shred(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go, destroy nothing.")
    ] = False,
) -> None:
    """Destroy the data keys of requests completed more than DSR_PACKAGE_RETENTION_DAYS
    ago; their packages stay on disk, unreadable. The worker also does this hourly."""
    from datetime import timedelta

    from services.crypto import LocalKeyProvider
    from services.crypto.shred import shred
    from services.ledger import Ledger

    settings = load_settings()
    with Ledger(settings.database_url) as ledger:
        ledger.migrate()
        done = shred(
            ledger,
            LocalKeyProvider.from_settings(settings),
            timedelta(days=settings.package_retention_days),
            dry_run=dry_run,
        )
    count = len(done.expired) if dry_run else done.destroyed
    console.print(
        f"{count} data key(s) of requests completed before {done.cutoff:%Y-%m-%d %H:%M} UTC "
        f"{'would be destroyed' if dry_run else 'destroyed'}; {done.retained} kept within "
        f"retention or open, {done.unknown} of requests not in the ledger left alone.",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
