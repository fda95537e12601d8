"""``dsr demo``: the pipeline end to end on sample systems; ``dsr demo seed``."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.cli.views import _print_report
from services.settings import Settings
from services.settings import load as load_settings

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
    from services.processes import HomeInUse

    settings = load_settings()
    try:
        written = install(settings, replace_files=force)
    except HomeInUse as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    for path in written:
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
    from services.processes import HomeInUse
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
    try:
        report = run(load_settings(), serve=keep_serving if serve else None)
    except HomeInUse as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from None
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
