"""Where response packages and letters are kept: a local directory or an S3 bucket.

``open_storage(url)`` picks the backend from ``DSR_STORAGE_URL``:

| url | backend |
|---|---|
| ``file:///var/lib/dsr/packages`` | ``LocalStorage``, the embedded default |
| ``s3://bucket/prefix`` | ``S3Storage`` (MinIO or moto with ``s3_endpoint_url``) |

Keys are relative, ``/``-separated paths such as ``responses/r-1/data.json``.
The same key rules hold for every backend, so a package written locally can
be written to S3 unchanged.

At rest, ``S3Storage`` encrypts every object server-side: SSE-KMS with the key
``DSR_S3_KMS_KEY_ID`` names, else SSE-S3 (``AES256``); nothing is stored in clear.
``link(key, expires)`` hands out an object without credentials: S3 presigns a
GET URL (SigV4, at most 7 days); a local directory cannot, and raises
``LinkUnsupported``.

Errors::

    StorageError
     ├── InvalidKey          (also a ValueError) the key is empty, absolute or escapes the root
     ├── ObjectNotFound      (also a LookupError) ``get`` or ``link`` of a key that does not exist
     ├── LinkUnsupported     this backend cannot make expiring links (a local directory)
     └── StorageUnavailable  a transient S3 error outlasted the retries; safe to retry later

Retries: ``S3Storage`` retries throttling, 5xx and connection errors with
tenacity (bounded attempts and time, exponential backoff with jitter), and fails at
once for a while after a call found the store unavailable. The client it builds
itself has botocore's own retries turned off and short time-outs, so tenacity is the
only retry layer. A client passed in keeps its own retry and time-out configuration.
"""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from services.files import write_atomic

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_LINK_EXPIRY",
    "InvalidKey",
    "LinkUnsupported",
    "LocalStorage",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "check_key",
    "open_storage",
]

T = TypeVar("T")

#: The longest a presigned S3 URL (SigV4) can be valid.
MAX_LINK_EXPIRY = timedelta(days=7)


class StorageError(Exception):
    """A storage operation failed."""


class InvalidKey(StorageError, ValueError):
    """The key is not a plain relative path inside the storage root."""


class ObjectNotFound(StorageError, LookupError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object stored under {key!r}")
        self.key = key


class LinkUnsupported(StorageError):
    """The backend cannot hand out expiring links to its objects."""


class StorageUnavailable(StorageError):
    """A transient error persisted through every attempt; the caller may retry later."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class Storage(Protocol):
    """What the pipeline needs from a place to keep packages."""

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key``, replacing any object there; return its URI."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise ``ObjectNotFound`` if there are none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; return how many."""
        ...

    def uri(self, key: str) -> str:
        """Where the object under ``key`` is (or would be), as a URI."""
        ...

    def link(self, key: str, expires: timedelta) -> str:
        """A URL that fetches the object under ``key`` without credentials until
        ``expires`` has passed; ``LinkUnsupported`` if the backend cannot make one."""
        ...


def check_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``InvalidKey``.

    With ``prefix=True`` a trailing ``/`` is allowed (``responses/r-1/``).
    """
    body = key[:-1] if prefix and key.endswith("/") else key
    if not body:
        raise InvalidKey(f"empty storage key {key!r}")
    if "\\" in key or "\x00" in key:
        raise InvalidKey(f"storage key {key!r} contains a backslash or NUL")
    if key.startswith("/"):  # a POSIX path is absolute exactly when it starts so
        raise InvalidKey(f"storage key {key!r} is absolute; keys are relative to the root")
    for part in body.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"storage key {key!r} has an empty, '.' or '..' segment")
    return key


class LocalStorage:
    """Objects as files under ``root``. Writes are atomic: temp file, then ``os.replace``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        """Where ``key`` is: a path in the root, or ``InvalidKey``.

        ``check_key`` leaves no ``.``, ``..`` or empty segment, and the root is resolved,
        so the joined path is the real one unless the root or a segment below it is a
        symlink. Only those are looked at (a path's full resolution looks at every
        directory from ``/``); a symlink found is resolved in full and must stay in the
        root."""
        check_key(key, prefix=prefix)
        parts = key.rstrip("/").split("/")
        steps = [str(self.root)]
        for part in parts:
            steps.append(os.path.join(steps[-1], part))
        for step in steps:
            try:
                if stat.S_ISLNK(os.lstat(step).st_mode):
                    return self._resolved(key)
            except (FileNotFoundError, NotADirectoryError):
                break  # nothing below a missing directory, or a file, is a symlink
        return Path(steps[-1])

    def _resolved(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise InvalidKey(f"storage key {key!r} resolves outside {self.root}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        write_atomic(path, data)
        return path.as_uri()

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        self._path(prefix, prefix=True)
        # Walk only the directory the prefix points into, then match by string
        # prefix, as S3 does: "responses/r-1" also matches "responses/r-10/...".
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not start.is_dir():
            return 0
        deleted = 0
        for path in [*sorted(start.rglob("*"), reverse=True), start]:
            if path == self.root:
                continue
            key = path.relative_to(self.root).as_posix()
            if (path.is_symlink() or path.is_file()) and key.startswith(prefix):
                path.unlink()
                deleted += 1
            elif path.is_dir() and f"{key}/".startswith(prefix) and not any(path.iterdir()):
                path.rmdir()
        return deleted

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def link(self, key: str, expires: timedelta) -> str:
        self._path(key)  # a bad key is InvalidKey here too
        raise LinkUnsupported(
            f"local storage ({self.root}) cannot make expiring links; "
            "store packages in S3 (DSR_STORAGE_URL=s3://bucket/prefix) to link them"
        )

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"


def open_storage(
    url: str, *, s3_endpoint_url: str | None = None, kms_key_id: str | None = None
) -> Storage:
    """Open the storage a URL names: ``file:///path`` or ``s3://bucket/prefix``.

    ``kms_key_id`` is the SSE-KMS key of an S3 bucket's objects (else SSE-S3).
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"storage URL {url!r}: file URLs must be file:///absolute/path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"storage URL {url!r}: file URLs must be file:///absolute/path")
        return LocalStorage(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"storage URL {url!r}: expected s3://bucket[/prefix]")
        if parts.query or parts.fragment:
            raise ValueError(f"storage URL {url!r}: query strings and fragments are not used")
        from services.delivery.s3storage import S3Storage  # boto3 only where S3 is used

        return S3Storage(
            parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint_url=s3_endpoint_url,
            kms_key_id=kms_key_id,
        )
    raise ValueError(
        f"unsupported storage URL {url!r}: use file:///absolute/path or s3://bucket/prefix"
    )
