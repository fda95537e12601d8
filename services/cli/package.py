"""``dsr package``: response packages, linked and opened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.settings import load as load_settings

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
