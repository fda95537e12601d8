"""``dsr``: run the pipeline, submit requests, follow them, and run the demo.

One module a command group; ``app`` is the root command, ``views`` how results are
shown. Importing a group's module registers its commands, in the order ``--help``
lists them."""

# isort: skip_file
from services.cli.app import app
from services.cli import running, requests, demo, schema, connector  # noqa: F401
from services.cli import console_users, dlq, park, provisions, audit, package, keys  # noqa: F401


def main() -> None:
    app()


__all__ = ["app", "main"]
