"""``LocalKeyProvider``: a master key file wrapping one data key per request."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from services.crypto import KeyDestroyed, LocalKeyProvider, MasterKeyError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_master_key_is_made_on_first_use_with_mode_0600(keys: LocalKeyProvider) -> None:
    assert not keys.master_key_path.exists()
    key = keys.data_key("r-1", create=True)
    assert len(key) == 32
    assert len(keys.master_key_path.read_bytes()) == 32
    assert mode(keys.master_key_path) == 0o600
    assert mode(keys.keys_dir / "data" / "r-1.key") == 0o600


def test_a_data_key_is_stable_and_stored_wrapped(keys: LocalKeyProvider) -> None:
    key = keys.data_key("r-1", create=True)
    assert keys.data_key("r-1") == key == keys.data_key("r-1", create=True)
    assert keys.data_key("r-2", create=True) != key
    stored = (keys.keys_dir / "data" / "r-1.key").read_bytes()
    assert key not in stored and key.hex().encode() not in stored
    assert LocalKeyProvider(keys.keys_dir).data_key("r-1") == key  # another process


def test_the_erasure_key_is_stable_derived_and_never_stored(
    keys: LocalKeyProvider, tmp_path: Path
) -> None:
    key = keys.erasure_hmac_key()
    assert len(key) == 32 and key != keys.master_key()
    assert LocalKeyProvider(keys.keys_dir).erasure_hmac_key() == key  # after a restart
    assert key != LocalKeyProvider(tmp_path / "elsewhere").erasure_hmac_key()  # another deployment
    stored = b"".join(p.read_bytes() for p in keys.keys_dir.rglob("*") if p.is_file())
    assert key not in stored and key.hex().encode() not in stored
    assert keys.list_keys() == []  # not a data key


def test_keys_lists_what_is_held_with_creation_times(keys: LocalKeyProvider) -> None:
    for rid in ("r-1", "r-2"):
        keys.data_key(rid, create=True)
    listed = keys.list_keys()
    assert [k.key_id for k in listed] == ["r-1", "r-2"]
    assert listed[0].created_at <= listed[1].created_at
    assert listed[0].created_at.tzinfo is not None


def test_destroy_deletes_the_key_and_says_if_there_was_none(keys: LocalKeyProvider) -> None:
    keys.data_key("r-1", create=True)
    assert keys.destroy("r-1") is True
    assert not (keys.keys_dir / "data" / "r-1.key").exists()
    assert keys.destroy("r-1") is False
    assert keys.destroy("never") is False
    with pytest.raises(KeyDestroyed, match="'r-1'"):
        keys.data_key("r-1")
    assert keys.list_keys() == []


def test_a_missing_key_is_not_created_unless_asked(keys: LocalKeyProvider) -> None:
    with pytest.raises(KeyDestroyed):
        keys.data_key("r-9")
    assert keys.list_keys() == []


def test_a_wrong_master_key_fails_clearly(keys: LocalKeyProvider, tmp_path: Path) -> None:
    keys.data_key("r-1", create=True)
    other = tmp_path / "other.key"
    other.write_bytes(b"\x01" * 32)
    with pytest.raises(MasterKeyError, match="does not unwrap with the master key"):
        LocalKeyProvider(keys.keys_dir, other).data_key("r-1")


def test_a_lost_master_key_is_not_silently_replaced(keys: LocalKeyProvider) -> None:
    keys.data_key("r-1", create=True)
    keys.master_key_path.unlink()
    with pytest.raises(MasterKeyError, match="no master key at .* but data keys"):
        LocalKeyProvider(keys.keys_dir).data_key("r-2", create=True)
    assert not keys.master_key_path.exists()


def test_a_malformed_master_key_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "master.key"
    short.write_bytes(b"too short")
    with pytest.raises(MasterKeyError, match="holds 9 bytes"):
        LocalKeyProvider(tmp_path / "keys", short).data_key("r-1", create=True)


def test_a_key_file_renamed_to_another_request_does_not_unwrap(keys: LocalKeyProvider) -> None:
    keys.data_key("r-1", create=True)
    data = keys.keys_dir / "data"
    (data / "r-2.key").write_bytes((data / "r-1.key").read_bytes())
    with pytest.raises(MasterKeyError):
        keys.data_key("r-2")
    stored = json.loads((data / "r-1.key").read_text())
    stored["created_at"] = "2000-01-01T00:00:00+00:00"  # altered metadata is caught too
    (data / "r-1.key").write_text(json.dumps(stored))
    with pytest.raises(MasterKeyError):
        keys.data_key("r-1")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 129, "r 1"])
def test_key_ids_are_request_ids(keys: LocalKeyProvider, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid data key id"):
        keys.data_key(bad, create=True)
