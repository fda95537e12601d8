"""``EncryptedStorage``: packages sealed at rest, one data key per request.

Wraps another ``Storage`` (the local directory by default): ``put`` seals each
file of ``responses/<request_id>/`` with that request's data key (see
``services.crypto.envelope`` for the format), ``get`` opens it; ``exists``,
``delete_prefix`` and ``uri`` go straight to the inner store. Once the
request's data key is destroyed, ``get`` raises ``KeyDestroyed``: the files are
still there, and unreadable.

``open_package_storage(settings)`` is what the pipeline and the CLI use: the
storage ``DSR_STORAGE_URL`` names, sealed when it is a local directory and
``DSR_ENCRYPT_PACKAGES`` is on (S3 encrypts server-side instead).
"""

from __future__ import annotations

from datetime import timedelta

from services.crypto.envelope import header, open_blob, seal
from services.crypto.keys import KeyProvider
from services.crypto.local import LocalKeyProvider
from services.delivery.package import package_prefix
from services.delivery.storage import (
    InvalidKey,
    LinkUnsupported,
    LocalStorage,
    Storage,
    check_key,
    open_storage,
)
from services.settings import Settings

__all__ = ["EncryptedStorage", "open_package_storage", "open_store", "split_package_key"]

SEALED_CONTENT_TYPE = "application/octet-stream"


def split_package_key(key: str) -> tuple[str, str]:
    """``responses/<request_id>/<name>`` as ``(request_id, name)``; ``InvalidKey`` otherwise."""
    check_key(key)
    parts = key.split("/", 2)
    if len(parts) != 3 or package_prefix(parts[1]) != f"{parts[0]}/{parts[1]}/":
        raise InvalidKey(f"storage key {key!r} is not a package file (responses/<request>/<name>)")
    return parts[1], parts[2]


class EncryptedStorage:
    """Package files sealed with their request's data key from ``keys``."""

    def __init__(self, inner: Storage, keys: KeyProvider) -> None:
        self.inner = inner
        self.keys = keys

    def put(self, key: str, data: bytes, content_type: str) -> str:
        request_id, name = split_package_key(key)
        sealed = seal(self.keys.data_key(request_id, create=True), request_id, name, data)
        return self.inner.put(key, sealed, SEALED_CONTENT_TYPE)

    def get(self, key: str) -> bytes:
        request_id, name = split_package_key(key)
        blob = self.inner.get(key)
        header(blob, where=key)  # a file that is not sealed says so before any key lookup
        return open_blob(self.keys.data_key(request_id), request_id, name, blob, where=key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)

    def uri(self, key: str) -> str:
        return self.inner.uri(key)

    def link(self, key: str, expires: timedelta) -> str:
        raise LinkUnsupported(
            "sealed packages cannot be linked: a link would hand out ciphertext; "
            "decrypt with `dsr package open REQUEST_ID` and deliver the files"
        )

    def __repr__(self) -> str:
        return f"EncryptedStorage({self.inner!r}, {self.keys!r})"


def open_store(settings: Settings) -> Storage:
    """The store ``DSR_STORAGE_URL`` names, as it is: for values sealed already."""
    return open_storage(
        settings.storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        kms_key_id=settings.s3_kms_key_id,
    )


def open_package_storage(settings: Settings, keys: KeyProvider | None = None) -> Storage:
    """The package store the settings name, sealed if it is local and encryption is on,
    with ``keys`` (by default the local provider the settings name)."""
    storage = open_store(settings)
    if settings.encrypt_packages and isinstance(storage, LocalStorage):
        return EncryptedStorage(storage, keys or LocalKeyProvider.from_settings(settings))
    return storage
