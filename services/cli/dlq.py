"""``dsr dlq``: dead letters, listed and redriven."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from services.cli.app import app, broker_address, console
from services.settings import load as load_settings

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
    bootstrap = broker_address(settings)
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
