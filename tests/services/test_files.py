"""Files written whole or not at all: ``services.files``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services import files


def _no_space(fd: int) -> None:
    raise OSError(28, "No space left on device")


def test_a_file_is_written_whole_into_a_new_directory_and_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "data.json"
    files.write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == ["data.json"]  # no temporary file left


def test_a_file_written_again_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    files.write_atomic(target, b"old")
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["data.json"]


def test_a_temporary_file_left_by_an_earlier_process_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.json"
    monkeypatch.setattr(files, "_serial", iter(range(7, 100)))
    stale = tmp_path / f".data.json.{os.getpid()}-7.tmp"
    stale.write_bytes(b"left by a crash")
    files.write_atomic(target, b"mine")
    assert target.read_bytes() == b"mine"
    assert stale.read_bytes() == b"left by a crash"  # not written over, not taken
    assert sorted(os.listdir(tmp_path)) == sorted(["data.json", stale.name])


def test_a_write_that_fails_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files.os, "fsync", _no_space)
    with pytest.raises(OSError, match="No space"):
        files.write_atomic(tmp_path / "data.json", b"{}")
    assert os.listdir(tmp_path) == []


def test_files_written_together_are_in_place_only_when_the_block_ends(tmp_path: Path) -> None:
    with files.synced_together():
        files.write_atomic(tmp_path / "p" / "data.json", b"{}")
        files.write_atomic(tmp_path / "p" / "manifest.json", b"[1]")
        files.write_atomic(tmp_path / "p" / "manifest.json", b"[2]")
        assert not (tmp_path / "p" / "data.json").exists()
        assert not (tmp_path / "p" / "manifest.json").exists()
    assert (tmp_path / "p" / "data.json").read_bytes() == b"{}"
    assert (tmp_path / "p" / "manifest.json").read_bytes() == b"[2]"  # the last one written
    assert sorted(os.listdir(tmp_path / "p")) == ["data.json", "manifest.json"]
    assert stat.S_IMODE((tmp_path / "p" / "data.json").stat().st_mode) == 0o600
    files.write_atomic(tmp_path / "after.json", b"{}")  # outside the block: at once
    assert (tmp_path / "after.json").read_bytes() == b"{}"


def test_files_written_together_are_each_synced_before_any_is_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[list[str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(sorted(os.listdir(tmp_path)))  # what is in place at this sync
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    with files.synced_together():
        for name in ("a.csv", "b.csv", "data.json"):
            files.write_atomic(tmp_path / name, name.encode())
    assert len(synced) == 3
    assert all(name.endswith(".tmp") for seen in synced for name in seen)  # none in place
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv", "data.json"]


def test_a_block_that_raises_leaves_none_of_its_files(tmp_path: Path) -> None:
    files.write_atomic(tmp_path / "data.json", b"old")
    with pytest.raises(RuntimeError), files.synced_together():
        files.write_atomic(tmp_path / "data.json", b"new")
        files.write_atomic(tmp_path / "summary.txt", b"new")
        raise RuntimeError("the ledger refused")
    assert os.listdir(tmp_path) == ["data.json"]
    assert (tmp_path / "data.json").read_bytes() == b"old"


def test_a_sync_that_fails_leaves_none_of_the_blocks_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files.os, "fsync", _no_space)
    with pytest.raises(OSError, match="No space"), files.synced_together():
        files.write_atomic(tmp_path / "a.csv", b"a")
        files.write_atomic(tmp_path / "b.csv", b"b")
    assert os.listdir(tmp_path) == []
