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
tenacity (bounded attempts, exponential backoff with jitter). The client it
builds itself has botocore's own retries turned off, so tenacity is the only
retry layer. A client passed in keeps its own retry configuration.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connectors.errors import S3_TRANSIENT_CODES
from services.files import write_atomic

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

__all__ = [
    "MAX_LINK_EXPIRY",
    "InvalidKey",
    "LinkUnsupported",
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
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
    if key.startswith("/") or PurePosixPath(body).is_absolute():
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
        check_key(key, prefix=prefix)
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


def is_transient(exc: BaseException) -> bool:
    """Whether an S3 error is throttling, a server error or a broken connection."""
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in S3_TRANSIENT_CODES or status == 429 or status >= 500
    return False


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects in an S3 bucket, under an optional key prefix.

    Every put is encrypted server-side: with ``kms_key_id``, SSE-KMS under that
    key (an id, ARN or ``alias/...``); without, ``sse`` picks ``"AES256"`` (the
    default, SSE-S3) or ``"aws:kms"`` (the account's ``aws/s3`` key). ``attempts``
    bounds the tenacity retries of transient errors; ``max_wait`` caps one backoff
    in seconds. A client passed in must sign with SigV4 for ``link`` to work.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: S3Client | None = None,
        *,
        sse: Literal["AES256", "aws:kms"] | None = None,
        kms_key_id: str | None = None,
        attempts: int = 5,
        max_wait: float = 5.0,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        if kms_key_id and sse == "AES256":
            raise ValueError("kms_key_id needs sse='aws:kms' (or sse left unset)")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.sse: Literal["AES256", "aws:kms"] = sse or ("aws:kms" if kms_key_id else "AES256")
        self.kms_key_id = kms_key_id
        self.attempts = attempts
        self.max_wait = max_wait
        self.client: Any = client if client is not None else self._make_client(endpoint_url)

    @staticmethod
    def _make_client(endpoint_url: str | None) -> S3Client:
        import boto3

        # botocore retries are off: tenacity (see _call) is the single retry layer.
        # SigV4: presigned links carry X-Amz-Expires, and SSE-KMS objects need it.
        config = Config(
            signature_version="s3v4",
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        return boto3.client("s3", endpoint_url=endpoint_url, config=config)

    def _key(self, key: str, *, prefix: bool = False) -> str:
        check_key(key, prefix=prefix)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=0.1, max=self.max_wait),
            retry=retry_if_exception(is_transient),
        )
        try:
            return retrying(fn)
        except RetryError as exc:  # only raised when every attempt was transient
            last = exc.last_attempt.exception()
            raise StorageUnavailable(
                f"{what} failed after {self.attempts} attempts: {last}", attempts=self.attempts
            ) from last
        except ClientError as exc:
            raise StorageError(f"{what} failed: {exc}") from exc

    def put(self, key: str, data: bytes, content_type: str) -> str:
        extra: dict[str, str] = {"ServerSideEncryption": self.sse}
        if self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        full = self._key(key)
        self._call(
            f"put s3://{self.bucket}/{full}",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type, **extra
            ),
        )
        return self.uri(key)

    def get(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            try:
                body: bytes = self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
            except ClientError as exc:
                if _error_code(exc) in ("NoSuchKey", "404"):
                    raise ObjectNotFound(key) from None
                raise
            return body

        return self._call(f"get s3://{self.bucket}/{full}", read)

    def exists(self, key: str) -> bool:
        full = self._key(key)

        def head() -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True

        return self._call(f"head s3://{self.bucket}/{full}", head)

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix, prefix=True)
        return self._call(f"delete s3://{self.bucket}/{full}*", lambda: self._delete_all(full))

    def _delete_all(self, full_prefix: str) -> int:
        deleted = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full_prefix
        )
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if not keys:
                continue
            out = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
            )
            if out.get("Errors"):
                first = out["Errors"][0]
                raise StorageError(
                    f"could not delete {len(out['Errors'])} objects under "
                    f"s3://{self.bucket}/{full_prefix}, e.g. {first.get('Key')}: "
                    f"{first.get('Code')}"
                )
            deleted += len(keys)
        return deleted

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def link(self, key: str, expires: timedelta) -> str:
        """A presigned GET URL for the object under ``key``, valid for ``expires``
        (1 s to 7 days); ``ObjectNotFound`` if there is no such object."""
        seconds = expires.total_seconds()
        if seconds < 1 or expires > MAX_LINK_EXPIRY or seconds != int(seconds):
            raise ValueError(
                f"link expiry must be whole seconds from 1 s to 7 days (S3's limit), "
                f"not {seconds:g} s"
            )
        if not self.exists(key):
            raise ObjectNotFound(key)
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=int(seconds),
        )
        if "X-Amz-Expires" not in parse_qs(urlsplit(url).query):
            raise StorageError(
                "the S3 client signed with SigV2, whose links neither cap their expiry nor "
                "open SSE-KMS objects; build it with Config(signature_version='s3v4')"
            )
        return url

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"


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
        return S3Storage(
            parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint_url=s3_endpoint_url,
            kms_key_id=kms_key_id,
        )
    raise ValueError(
        f"unsupported storage URL {url!r}: use file:///absolute/path or s3://bucket/prefix"
    )
