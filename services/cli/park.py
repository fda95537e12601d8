"""``dsr park``: requests set aside after a handler failed, listed and released."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from services.cli.app import app, broker_address, console, err
from services.ledger import Unparked
from services.settings import load as load_settings

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
        done = parked.release(ledger, broker_address(settings), request_id, by, timeout)
    if done.outcome is not Unparked.RELEASED:
        err.print(f"{request_id}: {done.outcome.replace('_', ' ')} (status {done.status})")
        raise typer.Exit(1)
    where = f", sent to {done.sent_to}" if done.sent_to else ""
    console.print(f"{request_id} released: back to {done.status}{where}.", highlight=False)
