"""Files written whole or not at all: ``services.files``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services import files


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
    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        files.write_atomic(tmp_path / "data.json", b"{}")
    assert os.listdir(tmp_path) == []
