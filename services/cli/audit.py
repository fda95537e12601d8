"""``dsr audit``: the audit trail's retention."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.settings import load as load_settings

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
