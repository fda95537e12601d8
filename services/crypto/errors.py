"""What goes wrong when sealing or opening a package file.

Errors::

    CryptoError
     ├── KeyDestroyed     (also a LookupError) the request's data key is gone: shredded,
     │                    or never created; its packages can no longer be opened
     ├── MasterKeyError   the master key is missing, malformed or not the one that
     │                    wrapped a data key (wrong master key)
     └── BlobError        a sealed file is not a sealed file, was altered, or was moved
                          to another request's or file's path
"""

from __future__ import annotations


class CryptoError(Exception):
    """Sealing or opening failed."""


class KeyDestroyed(CryptoError, LookupError):
    """No data key exists for ``request_id``."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"the data key of request {request_id!r} was destroyed (or never created): "
            "its package can no longer be opened"
        )
        self.request_id = request_id


class MasterKeyError(CryptoError):
    """The master key cannot unwrap a data key, or is unusable."""


class BlobError(CryptoError):
    """A sealed file failed to open: not sealed, tampered with, or in the wrong place."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
