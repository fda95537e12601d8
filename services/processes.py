"""Child processes that never outlive the process that started them, and what
``dsr up``'s supervisor last reported of them (``run/processes.json``)."""

from __future__ import annotations

import ctypes
import json
import signal
import sys
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for Popen: Linux sends the child SIGTERM when its parent dies,
    even by SIGKILL, so a crashed supervisor or test run leaves no broker or worker."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def processes_file(home: Path) -> Path:
    return home / "run" / "processes.json"


def read_processes(home: Path) -> dict[str, Any] | None:
    """What ``dsr up``'s supervisor last wrote, or None when it is not running."""
    try:
        body: dict[str, Any] = json.loads(processes_file(home).read_text())
    except (OSError, ValueError):
        return None
    return body
