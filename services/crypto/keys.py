"""The key provider interface: one data key per request, wrapped by a master key.

A provider creates a request's data key on first use, returns it to seal and
open that request's files, lists the keys it holds with their creation time,
and destroys a key when the request's retention ends (crypto-shredding: the
sealed files stay where they are, but nothing can open them).

``LocalKeyProvider`` (``local.py``) keeps a master key file and wraps each data
key with it. A KMS provider fits the same protocol without changing callers:

- ``data_key(create=True)`` calls KMS ``GenerateDataKey`` (``KeySpec=AES_256``,
  an ``EncryptionContext`` naming the request) and stores only the returned
  ``CiphertextBlob``, as the local provider stores its wrapped key;
- ``data_key()`` reads that blob and calls KMS ``Decrypt`` with the same
  encryption context, caching the plaintext key for a short time at most;
- ``destroy()`` deletes the stored blob; ``list_keys()`` lists the stored blobs.
  The KMS key itself is shared and is never scheduled for deletion per request.
- ``erasure_hmac_key()`` calls KMS ``GenerateMac`` (an HMAC KMS key) on a fixed
  label, or decrypts a stored wrapped key, once per process.

Besides the data keys, a provider holds one deployment secret: the key of the
``hash`` erasure method's HMAC (``connectors.pseudonyms``). It is stable for as long
as the master key is, so the same value always gets the same pseudonym, and it is
never stored beside the data it pseudonymises.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

#: What intake accepts as a request id; a data key is named after its request.
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

DATA_KEY_BYTES = 32  # AES-256
#: How long an unwrapped data key is kept in memory.
KEY_CACHE_S = 60.0


@dataclass(frozen=True)
class KeyInfo:
    """A data key a provider holds (never the key itself)."""

    key_id: str
    created_at: datetime


class KeyProvider(Protocol):
    """Per-request data keys. ``key_id`` is the request id."""

    def data_key(self, key_id: str, *, create: bool = False) -> bytes:
        """The request's 32-byte data key; with ``create``, made on first use.

        Raises ``KeyDestroyed`` when there is none (and ``create`` is false).
        """
        ...

    def destroy(self, key_id: str) -> bool:
        """Destroy the request's data key; False when there was none to destroy."""
        ...

    def list_keys(self) -> list[KeyInfo]:
        """Every data key held, oldest first."""
        ...

    def erasure_hmac_key(self) -> bytes:
        """The deployment's 32-byte key for ``hash`` erasure (HMAC-SHA256); the same
        on every call and in every process that shares the master key."""
        ...


def check_key_id(key_id: str) -> str:
    """Return ``key_id`` if it is a valid request id, else raise ``ValueError``."""
    if not KEY_ID.fullmatch(key_id):
        raise ValueError(f"invalid data key id {key_id!r}: a request id of [A-Za-z0-9._:-]")
    return key_id


class CachedKeys:
    """A ``KeyProvider`` that keeps each data key it hands out in memory for ``ttl_s``
    seconds, so one process's sealing and package files unwrap a request's key once.
    ``destroy`` forgets the key before destroying it."""

    def __init__(self, keys: KeyProvider, ttl_s: float = KEY_CACHE_S, most: int = 10_000) -> None:
        self.keys, self.ttl_s, self.most = keys, ttl_s, most
        self._cache: dict[str, tuple[float, bytes]] = {}

    def data_key(self, key_id: str, *, create: bool = False) -> bytes:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        key = self.keys.data_key(key_id, create=create)
        if len(self._cache) >= self.most:
            self._cache.clear()
        self._cache[key_id] = (now, key)
        return key

    def destroy(self, key_id: str) -> bool:
        self._cache.pop(key_id, None)
        return self.keys.destroy(key_id)

    def list_keys(self) -> list[KeyInfo]:
        return self.keys.list_keys()

    def erasure_hmac_key(self) -> bytes:
        return self.keys.erasure_hmac_key()

    def __repr__(self) -> str:
        return f"CachedKeys({self.keys!r})"
