"""``dsr keys``: the pipeline's keys: made, exported, shredded."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.app import app, console, err
from services.settings import load as load_settings

keys_app = typer.Typer(
    no_args_is_help=True,
    help="Package data keys (destroyed when retention ends), producer signing keys and "
    "the pipeline's key pair.",
)


app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init() -> None:
    """Make what a deployment's processes share, where absent: the master key, the
    pipeline's key pair (its public key exported for producers) and a producers' keyring
    with one key that may send everything. Safe to run again; `dsr up` does it itself."""
    from services.crypto.public import export_for_producers
    from services.signing import Keyring

    settings = load_settings()
    if settings.require_signatures:
        Keyring.ensure(settings.signing_keys_path)
    public = export_for_producers(settings)
    console.print(
        f"Pipeline public key {public.key_id} in {settings.pipeline_public_key_path}; "
        f"keyring {settings.signing_keys_path}.",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("producers")
def keys_producers() -> None:
    """Show each producer signing key's owner and what it may send (never its secret).
    Permissions are set in the keyring file (DSR_SIGNING_KEYS; `dsr keys add`); see the
    README."""
    from rich.markup import escape

    from services.signing import Keyring, KeyringError

    settings = load_settings()
    try:
        keyring = Keyring.load(settings.signing_keys_path)
    except KeyringError as exc:
        console.print(escape(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for key_id in sorted(keyring.keys):
        may = keyring.permissions(key_id)
        console.print(
            f"{escape(key_id)}  owner={escape(may.owner)}  "
            f"requests={','.join(sorted(may.requests)) or '-'}  "
            f"releases={'yes' if may.releases else 'no'}  "
            f"decisions={'yes' if may.decisions else 'no'}  "
            f"provisions={escape(','.join(sorted(may.provisions)) or '-')}"
            + ("" if key_id in keyring.grants else "  (bare secret: the default)"),
            highlight=False,
            soft_wrap=True,
        )


@keys_app.command("add")
def keys_add(
    key_id: Annotated[str, typer.Argument(help="The new key's id, e.g. crm-export.")],
    owner: Annotated[str, typer.Option(help="Who holds it: a person, a team or a job.")],
    requests: Annotated[
        list[str] | None, typer.Option("--request", help="A kind it may request, or *.")
    ] = None,
    releases: Annotated[bool, typer.Option(help="It may release held requests.")] = False,
    decisions: Annotated[bool, typer.Option(help="It may send operators' decisions.")] = False,
    provisions: Annotated[
        list[str] | None, typer.Option("--provision", help="A system it may record, or *.")
    ] = None,
) -> None:
    """Add a producer signing key that may send only what is given, and print its
    secret (once: it is kept nowhere else). Running workers take it from their next
    event on."""
    from rich.markup import escape

    from services.signing import ANY, KeyringError, Permissions, add_key
    from streams.records.base import Kind

    kinds = set(requests or ())
    if unknown := kinds - {ANY, *(k.value for k in Kind)}:
        err.print(f"not a request kind: {', '.join(sorted(unknown))}", highlight=False)
        raise typer.Exit(2)
    may = Permissions(owner, frozenset(kinds), releases, decisions, frozenset(provisions or ()))
    try:
        secret = add_key(load_settings().signing_keys_path, key_id, may)
    except KeyringError as exc:
        err.print(escape(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    err.print(f"key {escape(key_id)} added; its secret, shown this once:", highlight=False)
    print(secret)


@keys_app.command("remove")
def keys_remove(
    key_id: Annotated[str, typer.Argument(help="The key to take out.")],
) -> None:
    """Take a producer signing key out of the keyring: running workers refuse what it
    signs (unknown_key) from their next event on. For a key that leaked, or whose
    producer is gone."""
    from rich.markup import escape

    from services.signing import KeyringError, remove_key

    try:
        remove_key(load_settings().signing_keys_path, key_id)
    except KeyringError as exc:
        err.print(escape(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"key {escape(key_id)} removed", highlight=False)


@keys_app.command("public")
def keys_public(
    new: Annotated[
        bool, typer.Option("--new", help="Make a new key pair first (rotation).")
    ] = False,
    retire: Annotated[
        str | None,
        typer.Option(help="Destroy this old key id's private key; nothing sealed to it opens."),
    ] = None,
) -> None:
    """Print the pipeline's newest public key for producers (also written to
    DSR_PIPELINE_PUBLIC_KEY, default DSR_KEYS_DIR/pipeline.pub). See docs/operations.md."""
    from services.crypto import LocalKeyProvider
    from services.crypto.public import PipelineKeys, export_for_producers

    settings = load_settings()
    keys = PipelineKeys(LocalKeyProvider.from_settings(settings))
    if new:
        keys.create()
    if retire is not None and not keys.retire(retire):
        err.print(f"No pipeline key {retire!r}.", markup=False, highlight=False)
        raise typer.Exit(1)
    print(export_for_producers(settings).export())


@keys_app.command("shred")
def keys_shred(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go, destroy nothing.")
    ] = False,
) -> None:
    """Destroy the data keys of requests completed more than DSR_PACKAGE_RETENTION_DAYS
    ago; their packages stay on disk, unreadable. The worker also does this hourly."""
    from datetime import timedelta

    from services.crypto import LocalKeyProvider
    from services.crypto.shred import shred
    from services.ledger import Ledger

    settings = load_settings()
    with Ledger(settings.database_url) as ledger:
        ledger.migrate()
        done = shred(
            ledger,
            LocalKeyProvider.from_settings(settings),
            timedelta(days=settings.package_retention_days),
            dry_run=dry_run,
        )
    count = len(done.expired) if dry_run else done.destroyed
    console.print(
        f"{count} data key(s) of requests completed before {done.cutoff:%Y-%m-%d %H:%M} UTC "
        f"{'would be destroyed' if dry_run else 'destroyed'}; {done.retained} kept within "
        f"retention or open, {done.unknown} of requests not in the ledger left alone.",
        highlight=False,
        soft_wrap=True,
    )
