"""Sealed blobs: the format, and what makes one fail to open."""

from __future__ import annotations

import secrets

import pytest

from services.crypto import BlobError, open_blob, seal
from services.crypto.envelope import NONCE_BYTES, TAG_BYTES, VERSION

KEY = secrets.token_bytes(32)
PLAIN = b'{"email": "taro@example.jp"}'


def test_the_layout_is_version_key_id_nonce_ciphertext() -> None:
    blob = seal(KEY, "r-1", "data.json", PLAIN)
    assert blob[0] == VERSION and blob[1] == 3 and blob[2:5] == b"r-1"
    assert len(blob) == 5 + NONCE_BYTES + len(PLAIN) + TAG_BYTES
    assert b"taro" not in blob
    assert seal(KEY, "r-1", "data.json", PLAIN) != blob  # a fresh nonce each time


def test_a_blob_opens_with_its_key_request_and_name() -> None:
    blob = seal(KEY, "r-1", "crm/orders.csv", PLAIN)
    assert open_blob(KEY, "r-1", "crm/orders.csv", blob, where="k") == PLAIN


@pytest.mark.parametrize("index", [0, 1, 3, 5, 5 + NONCE_BYTES, -1])
def test_a_flipped_byte_fails_to_open(index: int) -> None:
    blob = bytearray(seal(KEY, "r-1", "data.json", PLAIN))
    blob[index] ^= 0x01
    with pytest.raises(BlobError):
        open_blob(KEY, "r-1", "data.json", bytes(blob), where="k")


def test_a_blob_for_another_request_or_file_fails_to_open() -> None:
    blob = seal(KEY, "r-1", "data.json", PLAIN)
    with pytest.raises(BlobError, match="moved between requests"):
        open_blob(KEY, "r-2", "data.json", blob, where="k")
    with pytest.raises(BlobError, match="does not authenticate"):
        open_blob(KEY, "r-1", "summary.txt", blob, where="k")
    with pytest.raises(BlobError, match="does not authenticate"):
        open_blob(secrets.token_bytes(32), "r-1", "data.json", blob, where="k")


@pytest.mark.parametrize("blob", [b"", b"{}", PLAIN, b"\x01\x03r-1short"])
def test_plain_or_truncated_files_are_not_sealed_blobs(blob: bytes) -> None:
    with pytest.raises(BlobError, match="responses/r-1/data.json"):
        open_blob(KEY, "r-1", "data.json", blob, where="responses/r-1/data.json")
