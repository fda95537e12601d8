"""The ``dsr`` command's root, its consoles, and finding the broker."""

from __future__ import annotations

import typer
from rich.console import Console

from services.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="dsr-pipeline: data-subject rights requests, end to end.",
)


console = Console()


err = Console(stderr=True)


def broker_address(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    addr = settings.home / "broker.addr"
    if addr.exists():
        return addr.read_text().strip()
    err.print("[red]No broker:[/] set DSR_KAFKA_BOOTSTRAP, or start one with `dsr up`.")
    raise typer.Exit(2)
