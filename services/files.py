"""Files written whole or not at all."""

from __future__ import annotations

import errno
import itertools
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_serial = itertools.count()
#: The files ``write_atomic`` has written in a ``synced_together`` block, each with its
#: path: (temporary file, path).
_held: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("held_writes", default=None)
_syncing: ThreadPoolExecutor | None = None
#: How many files are synced side by side; more wait in line (a disk's queue is short).
SYNC_THREADS = 8


#: What a disk with no room left says: full, or the owner's quota reached.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_status(path: Path, data: bytes) -> OSError | None:
    """Write a small file that others poll (a heartbeat, ``dsr up``'s report): whole,
    through a temporary file and a rename, not synced, since the next write replaces it.
    On a disk with no room for the temporary file, over the file in place, whose blocks
    it already has (a reader may then find it half written, once, and read it again).
    Returns the error, having raised nothing, where neither works: such a file is a
    report, and a process must not stop because it cannot write one."""
    try:
        os.replace(_temp(path, data, sync=False), path)
        return None
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            return exc
        failed = exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return failed  # no file to write over
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    return None


class StatusFile:
    """A file written by ``write_status`` again and again (a heartbeat, ``dsr up``'s
    report), which says on ``log`` when its writes start failing, and when they work
    again: once each, not at every write."""

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path, self.log = path, log
        self._written = True

    def write(self, data: bytes) -> None:
        failed = write_status(self.path, data)
        if (failed is None) == self._written:
            return
        self._written = failed is None
        if failed:
            self.log.warning("%s not written: %s", self.path, failed)
        else:
            self.log.info("%s written again", self.path)


def stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from the next: its inode, size and modification
    time; None if there is no file to stat."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def synced_temp(path: Path, data: bytes) -> Path:
    """A new file (mode 0600) beside ``path`` holding ``data``, synced, for the caller to
    move or link into place; ``path``'s directory is made if it is missing. The name is
    this process's own: no other writer opens it."""
    return _temp(path, data, sync=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename, so a
    reader (or a crash) never sees a half-written file. In a ``synced_together`` block,
    the file is synced and renamed when the block ends."""
    held = _held.get()
    if held is not None:
        held.append((_temp(path, data, sync=False), path))
        return
    tmp = synced_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def synced_together() -> Iterator[None]:
    """Within the block, ``write_atomic`` writes each file but neither syncs it nor moves
    it into place. When the block ends, the files are synced side by side (a journaling
    file system commits them together, where one after another each waits for its own
    commit), then renamed in the order they were written. So a file is at its path only
    after the block, and if the block (or a sync) raises, none of its files is there."""
    held: list[tuple[Path, Path]] = []
    token = _held.set(held)
    try:
        yield
        list(_pool().map(_sync, [tmp for tmp, _ in held]))
    except BaseException:
        for tmp, _ in held:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _held.reset(token)
    for tmp, path in held:
        os.replace(tmp, path)


def _temp(path: Path, data: bytes, *, sync: bool) -> Path:
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
            if sync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _sync(tmp: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pool() -> ThreadPoolExecutor:
    global _syncing  # noqa: PLW0603 - one pool a process, made when first needed
    if _syncing is None:
        _syncing = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="fsync")
    return _syncing
