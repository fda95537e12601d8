"""``dsr console``: the privacy-ops console's users."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.settings import load as load_settings

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
