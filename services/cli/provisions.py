"""``dsr provisions``: provision records imported and purged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.settings import load as load_settings

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
