"""Keyed pseudonyms: what the ``hash`` erasure method writes in place of a value.

A plain SHA-256 of a phone number is no protection: hashing every phone number
finds it. A pseudonym here is HMAC-SHA256 under the deployment's erasure key, so
nobody without that key can test a guess. It is still *pseudonymisation*, not
anonymisation: the key holder can, and the same value always gets the same
pseudonym (rows stay joinable). Use ``delete``, ``null`` or ``mask`` to remove data.

The key is held by the key provider (``KeyProvider.erasure_hmac_key()``) and never
stored beside the data. Connectors import nothing from ``services``, so the process
that hosts them (the connector runner) hands the key over once at start-up with
``configure()``. Without a key a pseudonym is refused with a ``FatalError``, never
made unkeyed.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from connectors.errors import FatalError

__all__ = ["DIGEST_CHARS", "configure", "configured", "is_pseudonym", "pseudonym"]

#: A pseudonym's length: 64 hex characters.
DIGEST_CHARS = 64
_HEX = re.compile(r"[0-9a-f]{64}")
_key: bytes | None = None


def configure(key: bytes | None) -> None:
    """Set (or, with None, clear) this process's erasure key: 32 bytes or more."""
    global _key
    if key is not None and len(key) < 32:
        raise ValueError("the erasure key must be at least 32 bytes")
    _key = key


def configured() -> bool:
    return _key is not None


def pseudonym(text: str) -> str:
    """HMAC-SHA256 of ``text`` under the erasure key, as 64 hex characters."""
    if _key is None:
        raise FatalError(
            "hash erasure needs the deployment's erasure key, and this process has none "
            "(the connector runner sets it from the key provider: DSR_KEYS_DIR)"
        )
    return hmac.new(_key, text.encode(), hashlib.sha256).hexdigest()


def is_pseudonym(text: str) -> bool:
    """Whether ``text`` looks like a pseudonym already (so erasing again leaves it)."""
    return _HEX.fullmatch(text) is not None
