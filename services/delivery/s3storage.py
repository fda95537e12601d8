"""``S3Storage``: packages and letters in an S3 bucket (``s3://bucket/prefix``), encrypted
server-side, with transient errors retried by tenacity (``services.delivery.storage``
says what every backend promises).

A call blocks its caller, and the worker calls from its event loop: so a call's retries
stop after ``RETRY_BUDGET_S``, a store that does not answer is given up on after
``READ_TIMEOUT_S``, and once a call has found the store unavailable, the next ones fail
at once for a while (``COOL_S``, doubling to ``COOL_MAX_S`` while it stays so). A store
that hangs then holds the loop for seconds now and then, not for minutes at every call;
the worker's batches wait for it without blocking (``streams.transient.patiently``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from connectors.errors import S3_TRANSIENT_CODES
from services.delivery.storage import (
    MAX_LINK_EXPIRY,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    check_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

#: Seconds to connect, and to wait for the store's next bytes, before an attempt fails.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
#: Seconds after which a call's failed attempt is not retried.
RETRY_BUDGET_S = 5.0
#: Seconds a call fails at once after one found the store unavailable: the first time,
#: and at most.
COOL_S, COOL_MAX_S = 1.0, 10.0


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
        self._cool = 0.0  # seconds of the last cool-down; 0 while the store answers
        self._cool_until = 0.0
        self.client: Any = client if client is not None else self._make_client(endpoint_url)

    @staticmethod
    def _make_client(endpoint_url: str | None) -> S3Client:
        import boto3

        # botocore retries are off: tenacity (see _call) is the single retry layer.
        # SigV4: presigned links carry X-Amz-Expires, and SSE-KMS objects need it.
        config = Config(
            signature_version="s3v4",
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
        )
        return boto3.client("s3", endpoint_url=endpoint_url, config=config)

    def _key(self, key: str, *, prefix: bool = False) -> str:
        check_key(key, prefix=prefix)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        cooling = self._cool_until - time.monotonic()
        if cooling > 0:
            raise StorageUnavailable(
                f"{what} not tried: the store was unavailable, tried again in {cooling:.1f} s",
                attempts=0,
            )
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(RETRY_BUDGET_S),
            wait=wait_exponential_jitter(initial=0.1, max=self.max_wait),
            retry=retry_if_exception(is_transient),
        )
        try:
            result = retrying(fn)
        except RetryError as exc:  # only raised when every attempt was transient
            self._cool = min(COOL_MAX_S, 2 * self._cool) if self._cool else COOL_S
            self._cool_until = time.monotonic() + self._cool
            last = exc.last_attempt.exception()
            tried = exc.last_attempt.attempt_number
            raise StorageUnavailable(
                f"{what} failed after {tried} attempts: {last}", attempts=tried
            ) from last
        except ClientError as exc:
            raise StorageError(f"{what} failed: {exc}") from exc
        self._cool = 0.0
        return result

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
