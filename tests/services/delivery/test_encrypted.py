"""``EncryptedStorage``: a real package sealed on disk, opened back, shredded."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from services.crypto import BlobError, KeyDestroyed, LocalKeyProvider
from services.delivery.encrypted import EncryptedStorage, open_package_storage
from services.delivery.package import build_package, read_package
from services.delivery.storage import InvalidKey, LinkUnsupported, LocalStorage, ObjectNotFound
from services.settings import Settings
from streams.records import Kind, TaskStatus
from tests.services.delivery.fixtures import make_response, make_result

PRINCIPAL = "taro.yamada@example.jp"
RECORDS = [
    {"_source": "customers", "id": 1, "email": PRINCIPAL, "name": "山田太郎"},
    {"_source": "orders", "order_id": "A-1", "total": 1200.5},
]


@pytest.fixture
def store(tmp_path: Path) -> EncryptedStorage:
    return EncryptedStorage(LocalStorage(tmp_path / "packages"), LocalKeyProvider(tmp_path / "k"))


def build(store: EncryptedStorage, request_id: str = "req-1") -> None:
    build_package(
        store,
        response=make_response(
            Kind.DISCLOSURE, request_id=request_id, systems={"crm": TaskStatus.OK}
        ),
        results=[make_result("crm", request_id=request_id, records=RECORDS)],
        method="electronic",
    )


def on_disk(tmp_path: Path, request_id: str = "req-1") -> dict[str, bytes]:
    root = tmp_path / "packages" / "responses" / request_id
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_package_is_sealed_on_disk_and_opens_through_the_store(
    store: EncryptedStorage, tmp_path: Path
) -> None:
    build(store)
    files = on_disk(tmp_path)
    assert set(files) == {"data.json", "summary.txt", "manifest.json", "crm/customers.csv",
                          "crm/orders.csv"}  # fmt: skip
    for data in files.values():
        assert PRINCIPAL.encode() not in data and b"req-1" in data[:8]
    package = read_package(store, "req-1")
    assert PRINCIPAL in json.dumps(json.loads(package["data.json"]))
    assert PRINCIPAL in package["crm/customers.csv"].decode("utf-8-sig")
    assert store.exists("responses/req-1/data.json")
    assert store.uri("responses/req-1/data.json").startswith("file://")


def test_a_flipped_byte_on_disk_fails_to_open(store: EncryptedStorage, tmp_path: Path) -> None:
    build(store)
    path = tmp_path / "packages" / "responses" / "req-1" / "data.json"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x80
    path.write_bytes(bytes(blob))
    with pytest.raises(BlobError, match="responses/req-1/data.json: does not authenticate"):
        store.get("responses/req-1/data.json")


def test_a_blob_moved_to_another_request_or_file_fails_to_open(
    store: EncryptedStorage, tmp_path: Path
) -> None:
    build(store, "req-1")
    build(store, "req-2")
    root = tmp_path / "packages" / "responses"
    shutil.copyfile(root / "req-1" / "data.json", root / "req-2" / "data.json")
    with pytest.raises(BlobError, match="moved between requests"):
        store.get("responses/req-2/data.json")
    shutil.copyfile(root / "req-1" / "summary.txt", root / "req-1" / "data.json")
    with pytest.raises(BlobError, match="does not authenticate"):
        store.get("responses/req-1/data.json")


def test_after_shredding_the_files_remain_but_do_not_open(
    store: EncryptedStorage, tmp_path: Path
) -> None:
    build(store)
    assert store.keys.destroy("req-1")
    files = on_disk(tmp_path)
    assert files and all(PRINCIPAL.encode() not in data for data in files.values())
    with pytest.raises(KeyDestroyed, match="'req-1'"):
        store.get("responses/req-1/data.json")


def test_plain_files_and_other_keys_are_refused(store: EncryptedStorage, tmp_path: Path) -> None:
    store.inner.put("responses/req-1/data.json", b"{}", "application/json")
    with pytest.raises(BlobError, match="not a sealed file"):
        store.get("responses/req-1/data.json")
    with pytest.raises(ObjectNotFound):
        store.get("responses/req-9/data.json")
    for key in ("letters/x.txt", "responses/req-1", "responses/../x/data.json"):
        with pytest.raises(InvalidKey):
            store.put(key, b"x", "text/plain")
    with pytest.raises(LinkUnsupported, match="dsr package open"):
        store.link("responses/req-1/data.json", timedelta(minutes=5))


def test_open_package_storage_seals_local_packages_unless_turned_off(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, storage_url_override=None, keys_dir_override=None, encrypt_packages=True
    )
    sealed = open_package_storage(settings)
    assert isinstance(sealed, EncryptedStorage)
    assert isinstance(sealed.keys, LocalKeyProvider)
    assert sealed.keys.master_key_path == tmp_path / "keys" / "master.key"
    plain = open_package_storage(Settings(home=tmp_path, encrypt_packages=False))
    assert isinstance(plain, LocalStorage)
