"""The bucket: the few S3 calls the connector makes, and how their errors become ours.

botocore's own retries are off (one attempt per call): the runner retries a
``RetriableError``, waiting at least its ``retry_after``.

| S3 says                                           | we raise                    |
|---------------------------------------------------|-----------------------------|
| throttling, 429, any 5xx, connection or timeout   | ``RetriableError``          |
| NoSuchBucket, bad or missing credentials          | ``ConfigError``             |
| AccessDenied and any other error                  | ``FatalError``              |

Messages name the operation and the S3 error code, never a key (keys hold
identifiers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from connectors.errors import (
    S3_TRANSIENT_CODES,
    ConfigError,
    ConnectorError,
    FatalError,
    RetriableError,
    parse_retry_after,
)
from connectors.s3.config import S3Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

#: A conditional write lost to a concurrent one: read again and retry.
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
CONFIG_CODES = frozenset(
    {"NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName"}
)
#: delete_objects takes at most this many keys.
DELETE_BATCH = 1000


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    is_delete_marker: bool


def make_client(cfg: S3Config) -> S3Client:
    import boto3

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=cfg.connect_timeout_s,
        read_timeout=cfg.read_timeout_s,
        s3={"addressing_style": "path"} if cfg.endpoint_url else None,
    )
    secret = cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
    return boto3.client(
        "s3",
        endpoint_url=cfg.endpoint_url,
        region_name=cfg.region,
        aws_access_key_id=cfg.access_key_id,
        aws_secret_access_key=secret,
        config=config,
    )


class Bucket:
    """One bucket, reached by one client; every call maps S3 errors to connector errors."""

    def __init__(self, system: str, cfg: S3Config) -> None:
        self.system = system
        self.name = cfg.bucket
        try:
            self.client: Any = make_client(cfg)
        except BotoCoreError as exc:
            raise ConfigError(f"system {system!r}: cannot build an S3 client: {exc}") from None

    def call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ConnectorError:
            raise
        except (ClientError, BotoCoreError) as exc:
            raise classify(self.system, operation, exc) from None

    def objects(self, location: str, *, folder: bool) -> list[ObjectInfo]:
        """Current objects under a folder prefix, or the one object with exactly this key."""

        def list_all() -> list[ObjectInfo]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=location
            )
            return [
                ObjectInfo(o["Key"], int(o.get("Size", 0)), o["LastModified"])
                for page in pages
                for o in page.get("Contents", [])
                if folder or o["Key"] == location
            ]

        return self.call("ListObjectsV2", list_all)

    def versions(self, location: str, *, folder: bool) -> list[Version]:
        """Every version and delete marker under a folder prefix, or of exactly this key."""

        def list_all() -> Iterator[Version]:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.name, Prefix=location
            )
            for page in pages:
                for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
                    for v in page.get(kind, []):
                        if folder or v["Key"] == location:
                            yield Version(v["Key"], v.get("VersionId") or "null", marker)

        return self.call("ListObjectVersions", lambda: list(list_all()))

    def versioned(self) -> bool:
        """Whether versioning is or was ever on (``Suspended`` buckets keep old versions)."""
        out = self.call(
            "GetBucketVersioning", lambda: self.client.get_bucket_versioning(Bucket=self.name)
        )
        return out.get("Status") in ("Enabled", "Suspended")

    def get(self, key: str) -> dict[str, Any] | None:
        """The GetObject response, or None if the object is gone; the caller reads or
        closes ``Body``."""
        try:
            out: dict[str, Any] = self.client.get_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise classify(self.system, "GetObject", exc) from None
        except BotoCoreError as exc:
            raise classify(self.system, "GetObject", exc) from None
        return out

    def read(self, body: Any, limit: int) -> bytes:
        """Up to ``limit`` + 1 bytes of a GetObject body, then close it."""
        try:
            return self.call("GetObject", lambda: bytes(body.read(limit + 1)))
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise classify(self.system, "HeadObject", exc) from None
        except BotoCoreError as exc:
            raise classify(self.system, "HeadObject", exc) from None
        return True

    def put(self, key: str, body: bytes, content_type: str, **extra: Any) -> None:
        self.call(
            "PutObject",
            lambda: self.client.put_object(
                Bucket=self.name, Key=key, Body=body, ContentType=content_type, **extra
            ),
        )

    def tags(self, key: str) -> dict[str, str]:
        out = self.call(
            "GetObjectTagging",
            lambda: self.client.get_object_tagging(Bucket=self.name, Key=key),
        )
        return {t["Key"]: t["Value"] for t in out.get("TagSet", [])}

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        tagset = [{"Key": k, "Value": v} for k, v in tags.items()]
        self.call(
            "PutObjectTagging",
            lambda: self.client.put_object_tagging(
                Bucket=self.name, Key=key, Tagging={"TagSet": tagset}
            ),
        )

    def delete(self, targets: list[dict[str, str]]) -> None:
        """Delete ``{"Key": ..., "VersionId": ...}`` targets, in batches."""
        for start in range(0, len(targets), DELETE_BATCH):
            batch = targets[start : start + DELETE_BATCH]
            request = partial(
                self.client.delete_objects,
                Bucket=self.name,
                Delete={"Objects": batch, "Quiet": True},
            )
            out = self.call("DeleteObjects", request)
            errors = out.get("Errors") or []
            if errors:
                codes = sorted({str(e.get("Code", "")) for e in errors})
                message = (
                    f"system {self.system!r}: S3 DeleteObjects could not delete "
                    f"{len(errors)} of {len(batch)} objects ({', '.join(codes)})"
                )
                if set(codes) <= S3_TRANSIENT_CODES:
                    raise RetriableError(message)
                raise FatalError(message)

    def head_bucket(self) -> None:
        self.call("HeadBucket", lambda: self.client.head_bucket(Bucket=self.name))

    def close(self) -> None:
        self.client.close()


def tagging(tags: dict[str, str]) -> str:
    """Tags as the URL-encoded ``Tagging`` parameter of PutObject."""
    return urlencode(tags)


def classify(system: str, operation: str, exc: ClientError | BotoCoreError) -> ConnectorError:
    """The connector error for an S3 error; the message holds no key or value."""
    prefix = f"system {system!r}: S3 {operation}"
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return RetriableError(f"{prefix} could not reach S3 ({type(exc).__name__})")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ConfigError(f"{prefix}: no usable AWS credentials ({type(exc).__name__})")
    if not isinstance(exc, ClientError):
        return FatalError(f"{prefix} failed ({type(exc).__name__})")
    code = _code(exc)
    meta = exc.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    message = f"{prefix} failed: {code or 'error'} (HTTP {status})"
    if code in CONFLICT_CODES:
        return RetriableError(f"{prefix}: the object changed meanwhile ({code})")
    if code in S3_TRANSIENT_CODES or status == 429 or status >= 500:
        headers = meta.get("HTTPHeaders") or {}
        return RetriableError(message, retry_after=parse_retry_after(headers.get("retry-after")))
    if code in CONFIG_CODES:
        return ConfigError(message)
    return FatalError(message)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
