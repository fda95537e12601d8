"""``dsr schema``: the published JSON Schemas of the event contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import app, err


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
