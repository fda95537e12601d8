"""Files written whole or not at all."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

_serial = itertools.count()


def synced_temp(path: Path, data: bytes) -> Path:
    """A new file (mode 0600) beside ``path`` holding ``data``, synced, for the caller to
    move or link into place; ``path``'s directory is made if it is missing. The name is
    this process's own: no other writer opens it."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{next(_serial)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:  # left by a process that had this pid before
            continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename, so a
    reader (or a crash) never sees a half-written file."""
    tmp = synced_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
