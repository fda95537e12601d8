from __future__ import annotations

import os
import socket
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from services.delivery.s3storage import READ_TIMEOUT_S, RETRY_BUDGET_S, S3Storage, is_transient
from services.delivery.storage import (
    InvalidKey,
    LinkUnsupported,
    LocalStorage,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    open_storage,
)
from tests.fixtures.moto_server import CREDENTIALS
from tests.integration.fixtures import wait_for
from tests.services.delivery.fixtures import endpoint, flaky_s3

BAD_KEYS = ["", "../x", "a/../../x", "a/..", "/etc/passwd", "a//b", "./a", "a\\b", "a\x00b"]


@pytest.fixture
def dummy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials for clients S3Storage builds itself; undone after the test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", CREDENTIALS["region_name"])


# --- LocalStorage ---------------------------------------------------------------------


def test_local_round_trip(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    uri = store.put("responses/r-1/data.json", b'{"a": 1}', "application/json")
    assert uri == (tmp_path / "responses/r-1/data.json").resolve().as_uri()
    assert uri == store.uri("responses/r-1/data.json")
    assert store.get("responses/r-1/data.json") == b'{"a": 1}'
    assert store.exists("responses/r-1/data.json")
    assert not store.exists("responses/r-1/other.json")
    with pytest.raises(ObjectNotFound):
        store.get("responses/r-1/other.json")
    with pytest.raises(ObjectNotFound):
        store.get("responses/r-1")  # a directory is not an object


def test_local_overwrite_is_atomic(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("k/file.bin", b"old" * 1000, "application/octet-stream")
    with (tmp_path / "k/file.bin").open("rb") as reader:
        store.put("k/file.bin", b"new", "application/octet-stream")
        assert reader.read() == b"old" * 1000  # the reader keeps the whole old file
    assert store.get("k/file.bin") == b"new"
    assert os.listdir(tmp_path / "k") == ["file.bin"]  # no temp files left behind


def test_local_failed_write_keeps_the_old_object(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("k/file.bin", b"old", "application/octet-stream")
    with pytest.raises(TypeError):
        store.put("k/file.bin", "not bytes", "text/plain")  # type: ignore[arg-type]
    assert store.get("k/file.bin") == b"old"
    assert os.listdir(tmp_path / "k") == ["file.bin"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_local_refuses_keys_that_escape(tmp_path: Path, key: str) -> None:
    store = LocalStorage(tmp_path / "root")
    for call in (
        lambda: store.put(key, b"x", "text/plain"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.uri(key),
    ):
        with pytest.raises(InvalidKey):
            call()
    assert not (tmp_path / "x").exists()
    assert issubclass(InvalidKey, ValueError)


def test_local_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root/link").symlink_to(outside)
    store = LocalStorage(tmp_path / "root")
    with pytest.raises(InvalidKey, match="outside"):
        store.put("link/x", b"x", "text/plain")
    assert list(outside.iterdir()) == []


def test_local_refuses_a_symlink_out_of_the_root_below_a_real_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root/responses/r-1").mkdir(parents=True)
    (tmp_path / "root/responses/r-1/crm").symlink_to(outside)
    store = LocalStorage(tmp_path / "root")
    for call in (
        lambda: store.put("responses/r-1/crm/x", b"x", "text/plain"),
        lambda: store.get("responses/r-1/crm/x"),
        lambda: store.exists("responses/r-1/crm/x"),
        lambda: store.uri("responses/r-1/crm/x"),
        lambda: store.delete_prefix("responses/r-1/crm/"),
    ):
        with pytest.raises(InvalidKey, match="outside"):
            call()
    assert list(outside.iterdir()) == []


def test_local_refuses_a_root_that_became_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    store = LocalStorage(tmp_path / "root")
    (tmp_path / "root").rename(tmp_path / "moved")
    (tmp_path / "root").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(InvalidKey, match="outside"):
        store.put("k/x", b"x", "text/plain")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_local_follows_a_symlink_that_stays_in_the_root(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    store.put("alias/x.json", b"x", "application/json")
    assert (tmp_path / "real/x.json").read_bytes() == b"x"
    assert store.get("alias/x.json") == b"x"
    assert store.uri("alias/x.json") == (tmp_path / "real/x.json").as_uri()


@pytest.mark.parametrize(
    "key", ["a", "a/b", "a/b/c.json", "file/x", "missing/deeper/x", "link/in", "link/out/x"]
)
def test_local_paths_are_the_fully_resolved_ones(tmp_path: Path, key: str) -> None:
    """Where a key is, or that it is refused, as a full resolution of the path says."""
    root = tmp_path / "root"
    (root / "a/b").mkdir(parents=True)
    (root / "a/b/c.json").write_bytes(b"{}")
    (root / "file").write_bytes(b"")
    (root / "link").symlink_to(root / "a")
    (root / "a/out").symlink_to(tmp_path)
    store = LocalStorage(root)
    resolved = (root / key).resolve()
    if resolved == root or root in resolved.parents:
        assert store.uri(key) == resolved.as_uri()
        assert store.exists(key) == resolved.is_file()
    else:
        with pytest.raises(InvalidKey, match="outside"):
            store.uri(key)


def test_local_delete_prefix(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    for key in ["responses/r-1/a.json", "responses/r-1/crm/t.csv", "responses/r-10/a.json"]:
        store.put(key, b"x", "text/plain")
    assert store.delete_prefix("responses/r-1/") == 2
    assert not (tmp_path / "responses/r-1").exists()  # empty folders go too
    assert store.exists("responses/r-10/a.json")
    assert store.delete_prefix("responses/r-1/") == 0
    assert store.delete_prefix("nothing/here/") == 0
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    with pytest.raises(InvalidKey):
        store.delete_prefix("../")


# --- S3Storage against the moto server --------------------------------------------------


def test_s3_round_trip(s3: Any, bucket: str, moto_server: str) -> None:
    store = S3Storage(bucket, prefix="/pkgs/", endpoint_url=moto_server, client=s3)
    uri = store.put("responses/r-1/data.json", b'{"a": 1}', "application/json")
    assert uri == f"s3://{bucket}/pkgs/responses/r-1/data.json"
    assert store.get("responses/r-1/data.json") == b'{"a": 1}'
    head = s3.head_object(Bucket=bucket, Key="pkgs/responses/r-1/data.json")
    assert head["ContentType"] == "application/json"
    assert head["ServerSideEncryption"] == "AES256"  # never stored in clear
    store.put("responses/r-1/data.json", b"v2", "application/json")
    assert store.get("responses/r-1/data.json") == b"v2"


def test_s3_exists_and_missing(s3: Any, bucket: str) -> None:
    store = S3Storage(bucket, client=s3)
    store.put("a/b.txt", b"x", "text/plain")
    assert store.exists("a/b.txt")
    assert not store.exists("a/c.txt")
    assert store.uri("a/b.txt") == f"s3://{bucket}/a/b.txt"
    with pytest.raises(ObjectNotFound):
        store.get("a/c.txt")


def test_s3_delete_prefix(s3: Any, bucket: str) -> None:
    store = S3Storage(bucket, prefix="p", client=s3)
    for key in ["responses/r-1/a.json", "responses/r-1/crm/t.csv", "responses/r-10/a.json"]:
        store.put(key, b"x", "text/plain")
    s3.put_object(Bucket=bucket, Key="responses/r-1/outside-prefix", Body=b"x")
    assert store.delete_prefix("responses/r-1/") == 2
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["p/responses/r-10/a.json", "responses/r-1/outside-prefix"]
    assert store.delete_prefix("responses/r-1/") == 0


@pytest.mark.parametrize("key", BAD_KEYS)
def test_s3_refuses_the_same_keys(s3: Any, bucket: str, key: str) -> None:
    store = S3Storage(bucket, client=s3)
    with pytest.raises(InvalidKey):
        store.put(key, b"x", "text/plain")


def test_s3_encrypts_with_sse_s3_by_default(s3: Any, bucket: str) -> None:
    store = S3Storage(bucket, client=s3)
    store.put("k", b"x", "text/plain")
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ServerSideEncryption"] == "AES256"
    assert "SSEKMSKeyId" not in head
    with pytest.raises(ValueError, match="kms_key_id"):
        S3Storage(bucket, client=s3, sse="AES256", kms_key_id="key-1")


def test_s3_encrypts_with_the_configured_kms_key(
    dummy_env: None, s3: Any, bucket: str, moto_server: str
) -> None:
    kms = boto3.client("kms", endpoint_url=moto_server, **CREDENTIALS)
    key_id = kms.create_key(Description="dsr packages")["KeyMetadata"]["KeyId"]
    store = open_storage(f"s3://{bucket}/pkgs", s3_endpoint_url=moto_server, kms_key_id=key_id)
    store.put("responses/r-1/data.json", b"{}", "application/json")
    head = s3.head_object(Bucket=bucket, Key="pkgs/responses/r-1/data.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id
    assert store.get("responses/r-1/data.json") == b"{}"


def test_s3_missing_bucket_is_a_storage_error_not_retried(s3: Any) -> None:
    store = S3Storage("no-such-bucket", client=s3, attempts=3)
    with pytest.raises(StorageError) as caught:
        store.put("k", b"x", "text/plain")
    assert not isinstance(caught.value, StorageUnavailable)


# --- retries ----------------------------------------------------------------------------


def test_s3_retries_throttling_then_succeeds(dummy_env: None) -> None:
    with flaky_s3(failures=2) as server:
        store = S3Storage("b", endpoint_url=endpoint(server), attempts=5, max_wait=0.01)
        assert store.get("k") == b"payload"
        assert server.requests == 3


def test_s3_gives_up_after_the_bounded_attempts(dummy_env: None) -> None:
    with flaky_s3(failures=100) as server:
        store = S3Storage("b", endpoint_url=endpoint(server), attempts=3, max_wait=0.01)
        with pytest.raises(StorageUnavailable) as caught:
            store.put("k", b"x", "text/plain")
        # botocore's own retries are off, so tenacity's attempts are all the requests made
        assert server.requests == 3
    assert caught.value.attempts == 3


def test_s3_gives_up_on_a_store_that_does_not_answer_within_its_budget(
    dummy_env: None,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never answers
        host, port = silent.getsockname()[:2]
        store = S3Storage("b", endpoint_url=f"http://{host}:{port}", attempts=5)
        with pytest.raises(StorageUnavailable) as caught:
            store.put("k", b"x", "text/plain")
    # one attempt waits out the read time-out, which spends the call's retry budget
    assert READ_TIMEOUT_S >= RETRY_BUDGET_S and caught.value.attempts == 1


def test_s3_found_away_is_not_called_again_until_its_cool_down_is_over(
    dummy_env: None,
) -> None:
    with flaky_s3(failures=3) as server:
        store = S3Storage("b", endpoint_url=endpoint(server), attempts=3, max_wait=0.01)
        with pytest.raises(StorageUnavailable):
            store.put("k", b"x", "text/plain")
        assert server.requests == 3
        calls = 0

        def stored() -> bool:
            nonlocal calls
            calls += 1
            try:
                store.put("k", b"x", "text/plain")
            except StorageUnavailable as exc:
                assert exc.attempts == 0  # refused without a request
                return False
            return True

        wait_for("the call after the cool-down", stored, timeout=30)
        # however often it was called meanwhile, only the call after the cool-down went out
        assert calls > 1 and server.requests == 4


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_client_error("SlowDown", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("Whatever", 502), True),
        (_client_error("TooManyRequests", 429), True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), True),
        (_client_error("AccessDenied", 403), False),
        (_client_error("NoSuchBucket", 404), False),
        (ValueError("x"), False),
    ],
)
def test_transient_errors(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


# --- open_storage -----------------------------------------------------------------------


def test_open_storage_file_url(tmp_path: Path) -> None:
    store = open_storage(tmp_path.as_uri())
    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path.resolve()
    spaced = open_storage("file:///tmp/with%20space/pkgs")
    assert isinstance(spaced, LocalStorage)
    assert spaced.root == Path("/tmp/with space/pkgs").resolve()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bucket", "bucket", ""), ("s3://bucket/", "bucket", ""), ("s3://b/a/b/", "b", "a/b")],
)
def test_open_storage_s3_url(url: str, bucket: str, prefix: str) -> None:
    store = open_storage(url, s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "/plain/path",
        "http://example.com/x",
        "ftp://x/y",
        "file://host/x",
        "s3://",
        "s3:///x",
        "s3://b/p?x=1",
        "file:relative",
    ],
)
def test_open_storage_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="storage URL"):
        open_storage(url)


def test_open_storage_s3_round_trip(dummy_env: None, bucket: str, moto_server: str) -> None:
    store = open_storage(f"s3://{bucket}/pkgs", s3_endpoint_url=moto_server)
    assert store.put("x/y.txt", b"hello", "text/plain") == f"s3://{bucket}/pkgs/x/y.txt"
    assert store.get("x/y.txt") == b"hello"
    assert store.exists("x/y.txt")
    assert store.delete_prefix("x/") == 1
    assert not store.exists("x/y.txt")


# --- links ------------------------------------------------------------------------------


def test_s3_link_downloads_the_exact_bytes(dummy_env: None, bucket: str, moto_server: str) -> None:
    payload = bytes(range(256)) * 40
    store = S3Storage(bucket, prefix="pkgs", endpoint_url=moto_server)
    store.put("responses/r-1/letter.pdf", payload, "application/pdf")
    url = store.link("responses/r-1/letter.pdf", timedelta(minutes=15))
    assert url.startswith(f"{moto_server}/{bucket}/pkgs/responses/r-1/letter.pdf?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback moto
        assert answer.read() == payload
        assert answer.headers["Content-Type"] == "application/pdf"


def test_s3_link_is_signed_for_its_short_expiry(
    dummy_env: None, bucket: str, moto_server: str
) -> None:
    """The link carries its expiry in its SigV4 signature (X-Amz-Date + X-Amz-Expires),
    which S3 enforces. moto 5.2 does not check presigned expiry (nor the signature):
    an expired link still downloads there, so only what is signed is asserted here."""
    store = S3Storage(bucket, endpoint_url=moto_server)
    store.put("k", b"x", "text/plain")
    query = parse_qs(urlsplit(store.link("k", timedelta(seconds=1))).query)
    assert query["X-Amz-Expires"] == ["1"]
    assert "X-Amz-Date" in query and "X-Amz-Signature" in query
    assert query["X-Amz-SignedHeaders"] == ["host"]


@pytest.mark.parametrize(
    "expires",
    [timedelta(0), timedelta(seconds=-5), timedelta(days=7, seconds=1), timedelta(seconds=1.5)],
)
def test_s3_link_refuses_expiries_s3_would_not_honour(
    dummy_env: None, bucket: str, moto_server: str, expires: timedelta
) -> None:
    store = S3Storage(bucket, endpoint_url=moto_server)
    store.put("k", b"x", "text/plain")
    with pytest.raises(ValueError, match="7 days"):
        store.link("k", expires)
    assert store.link("k", timedelta(days=7))  # the limit itself is fine


def test_s3_link_to_a_missing_object_or_with_a_sigv2_client(
    s3: Any, bucket: str, moto_server: str
) -> None:
    sigv2 = boto3.client(
        "s3", endpoint_url=moto_server, config=Config(signature_version="s3"), **CREDENTIALS
    )
    store = S3Storage(bucket, client=sigv2)
    with pytest.raises(ObjectNotFound):
        store.link("nothing/here.json", timedelta(minutes=1))
    with pytest.raises(InvalidKey):
        store.link("../x", timedelta(minutes=1))
    store.put("k", b"x", "text/plain")
    with pytest.raises(StorageError, match="s3v4"):
        store.link("k", timedelta(minutes=1))


def test_local_storage_cannot_make_links(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("responses/r-1/data.json", b"{}", "application/json")
    with pytest.raises(LinkUnsupported, match="cannot make expiring links"):
        store.link("responses/r-1/data.json", timedelta(minutes=15))
    with pytest.raises(InvalidKey):
        store.link("../x", timedelta(minutes=15))
