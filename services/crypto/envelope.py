"""Sealed files: AES-256-GCM under a request's data key.

A sealed blob is::

    offset  size  field
    0       1     version, 0x01
    1       1     n, the length of the key id (1..128)
    2       n     key id: the request id, ASCII
    2+n     12    nonce, random per blob
    14+n    rest  ciphertext, then the 16-byte GCM tag

The associated data is the header (the first ``2+n`` bytes), a NUL and the
file's name inside its package (``data.json``, ``crm/orders.csv``). The tag
therefore fails if a byte is flipped, if the blob is copied under another
request's id or path, or if it is renamed to another file of the package.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.crypto.errors import BlobError
from services.crypto.keys import check_key_id

__all__ = ["VERSION", "Header", "header", "open_blob", "seal"]

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16


@dataclass(frozen=True)
class Header:
    key_id: str
    #: The header's length in bytes: the nonce starts here.
    size: int


def seal(key: bytes, key_id: str, name: str, plaintext: bytes) -> bytes:
    """Seal ``plaintext``, the file ``name`` of request ``key_id``'s package."""
    ident = check_key_id(key_id).encode("ascii")
    head = bytes([VERSION, len(ident)]) + ident
    nonce = secrets.token_bytes(NONCE_BYTES)
    return head + nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(head, name))


def header(blob: bytes, *, where: str) -> Header:
    """Read a blob's header; ``where`` names it in errors (its storage key)."""
    if len(blob) < 2 or blob[0] != VERSION:
        raise BlobError(
            "not a sealed file (unknown version byte; written before encryption was on?)",
            key=where,
        )
    size = 2 + blob[1]
    if blob[1] == 0 or len(blob) < size + NONCE_BYTES + TAG_BYTES:
        raise BlobError("sealed file is truncated", key=where)
    try:
        key_id = check_key_id(blob[2:size].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BlobError("sealed file has a malformed key id", key=where) from None
    return Header(key_id, size)


def open_blob(key: bytes, key_id: str, name: str, blob: bytes, *, where: str) -> bytes:
    """Open a blob sealed by ``seal(key, key_id, name, ...)``, or raise ``BlobError``."""
    head = header(blob, where=where)
    if head.key_id != key_id:
        raise BlobError(
            f"sealed for request {head.key_id!r}, not {key_id!r}: moved between requests",
            key=where,
        )
    nonce = blob[head.size : head.size + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(
            nonce, blob[head.size + NONCE_BYTES :], _aad(blob[: head.size], name)
        )
    except InvalidTag:
        raise BlobError(
            "does not authenticate: altered, or moved from another file of the package",
            key=where,
        ) from None


def _aad(head: bytes, name: str) -> bytes:
    return head + b"\0" + name.encode()
