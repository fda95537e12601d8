"""Child processes that never outlive the process that started them, what ``dsr up``'s
supervisor last reported of them (``run/processes.json``), and the hold one stack keeps
on its ``DSR_HOME`` (``run/stack.lock``)."""

from __future__ import annotations

import ctypes
import fcntl
import gc
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
#: Seconds a worker or runner has to stop after SIGTERM before it exits regardless.
STOP_DEADLINE_S = 20.0


def die_with_parent() -> None:
    """``preexec_fn`` for Popen: Linux sends the child SIGTERM when its parent dies,
    even by SIGKILL, so a crashed supervisor or test run leaves no broker or worker."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def exit_after(seconds: float = STOP_DEADLINE_S) -> None:
    """Exit the process ``seconds`` from now unless it has exited by then: a graceful
    stop that hangs (a broker that is gone, so no group can be left and no commit made)
    must not leave a process behind, spinning, once its supervisor has died."""

    def give_up() -> None:
        logging.getLogger("dsr.process").error(
            "still stopping after %g s; exiting without finishing", seconds
        )
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


def settle_heap() -> None:
    """Once a process has started (the first time it is ready), put what it has made so
    far (modules, classes, its app and clients) beyond the garbage collector's full
    collections, which otherwise walk all of it while the event loop waits (in the
    worker at 50 requests a second, one took 92 ms over 178,000 objects). Later calls
    do nothing."""
    if gc.get_freeze_count():
        return
    gc.collect()  # the start's garbage goes first, rather than being kept for good
    gc.freeze()


class HomeInUse(RuntimeError):
    """Another stack (``dsr up``, ``dsr demo``) runs on this ``DSR_HOME``."""


def hold_home(home: Path) -> IO[bytes]:
    """An exclusive hold on ``home`` for one stack, kept until the file returned is
    closed or the process ends, by SIGKILL too (the kernel lets go of a ``flock``).
    Two stacks on one home would each start a broker and re-drive every open request,
    and each overwrite the other's addresses (``broker.addr``, ``run/console.url``);
    the second is refused with ``HomeInUse``, naming the holder's pid, before it
    starts anything."""
    path = home / "run" / "stack.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    held = path.open("a+b")  # not inherited by the processes the stack starts
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        holder = held.read().decode(errors="replace").strip() or "unknown"
        held.close()
        raise HomeInUse(
            f"{home} is in use by another `dsr up` or `dsr demo` (pid {holder}): stop it, "
            "or set DSR_HOME to another directory"
        ) from None
    held.truncate(0)
    held.write(str(os.getpid()).encode())
    held.flush()
    return held


def processes_file(home: Path) -> Path:
    return home / "run" / "processes.json"


def read_processes(home: Path) -> dict[str, Any] | None:
    """What ``dsr up``'s supervisor last wrote, or None when it is not running."""
    try:
        body: dict[str, Any] = json.loads(processes_file(home).read_text())
    except (OSError, ValueError):
        return None
    return body
