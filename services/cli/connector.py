"""``dsr connector``: scaffold a connector, and check the data map's systems."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.settings import load as load_settings

connector_app = typer.Typer(
    no_args_is_help=True, help="Write a connector, and check the data map's connectors."
)


app.add_typer(connector_app, name="connector")


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
