"""Envelope encryption of response packages, and crypto-shredding.

Each request gets its own AES-256 data key from a ``KeyProvider``; every file of
its package is sealed with that key (``envelope.py``). When the request's
retention ends its data key is destroyed (``shred.py``), and its package, still
on disk, can no longer be opened.
"""

from services.crypto.envelope import open_blob, seal
from services.crypto.errors import BlobError, CryptoError, KeyDestroyed, MasterKeyError
from services.crypto.keys import KeyInfo, KeyProvider, check_key_id
from services.crypto.local import LocalKeyProvider

__all__ = [
    "BlobError",
    "CryptoError",
    "KeyDestroyed",
    "KeyInfo",
    "KeyProvider",
    "LocalKeyProvider",
    "MasterKeyError",
    "check_key_id",
    "open_blob",
    "seal",
]
