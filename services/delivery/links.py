"""Expiring links to the files of a completed request's stored package.

The principal gets a link, not credentials: ``package_link`` finds the request's
response in the ledger and asks the storage for a presigned URL to one file of
its package (``responses/{request_id}/...``, see ``package.py``). The link says
nothing about integrity by itself; ``manifest.json`` in the same package lists
every file's SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.delivery.package import MANIFEST, package_prefix
from services.delivery.storage import ObjectNotFound, Storage, check_key

if TYPE_CHECKING:
    from services.ledger import Ledger

__all__ = ["NoPackage", "link_to", "main_file", "package_link"]


class NoPackage(LookupError):
    """The request is unknown, has no response yet, or its response has no package."""


def main_file(body: Mapping[str, object]) -> str:
    """The file a principal most wants: the PDF letter if there is one, else data.json."""
    return "letter.pdf" if body.get("letter") else "data.json"


def package_link(
    ledger: Ledger,
    storage: Storage,
    request_id: str,
    *,
    expires: timedelta,
    file: str | None = None,
) -> str:
    """A link to ``file`` (default ``main_file``) of the request's package, valid for
    ``expires``. Raises ``NoPackage``, or the storage's ``LinkUnsupported``."""
    response = ledger.response(request_id)
    if response is None:
        raise NoPackage(f"no response to request {request_id!r} in the ledger (yet)")
    return link_to(storage, request_id, response.body, expires, file)


def link_to(
    storage: Storage,
    request_id: str,
    body: Mapping[str, Any],
    expires: timedelta,
    file: str | None = None,
) -> str:
    """A link to ``file`` of the package the response ``body`` names."""
    stored = body.get("package") or body.get("letter")
    if not stored:
        raise NoPackage(
            f"the {body.get('status')} response to {request_id!r} ({body.get('kind')}) "
            "has no stored package"
        )
    prefix = package_prefix(request_id)
    here = storage.uri(prefix.rstrip("/")) + "/"
    if not str(stored).startswith(here):
        raise NoPackage(
            f"the package of {request_id!r} is at {stored}, not in the configured "
            f"storage ({here}); check DSR_STORAGE_URL"
        )
    name = check_key(file or main_file(body))
    try:
        return storage.link(prefix + name, expires)
    except ObjectNotFound:
        raise NoPackage(
            f"the package of {request_id!r} has no {name!r}; its {MANIFEST} lists its files"
        ) from None
