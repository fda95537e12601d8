"""Child processes that never outlive the process that started them, and what
``dsr up``'s supervisor last reported of them (``run/processes.json``)."""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

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


def processes_file(home: Path) -> Path:
    return home / "run" / "processes.json"


def read_processes(home: Path) -> dict[str, Any] | None:
    """What ``dsr up``'s supervisor last wrote, or None when it is not running."""
    try:
        body: dict[str, Any] = json.loads(processes_file(home).read_text())
    except (OSError, ValueError):
        return None
    return body
