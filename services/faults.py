"""Crash points, for the fault tests: a process told ``DSR_CRASH_AT=<point>[,<point>...]``
kills itself with SIGKILL the first time it reaches one of those points, as a power cut
would. A marker file (``$DSR_HOME/run/crashed-<point>``) remembers each crash, so the
restarted process runs through. Unset, a crash point costs one set lookup.

| point | the process has just... | and has not yet... |
|---|---|---|
| ``intake.recorded`` | recorded a request in the ledger | sent it to fan-out |
| ``fanout.planned`` | recorded the request's tasks | sent them |
| ``runner.effect_done`` | carried out a task in its system | sent the result |
| ``aggregate.recorded`` | recorded a task's result | sent what it unlocked |
| ``aggregate.completed`` | completed the request and queued its response | sent it |
| ``responses.published`` | sent the response | marked it sent in the ledger |
| ``worker.starting``, ``runner.starting`` | started | joined its consumer group |
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from services.settings import for_process

POINTS = (
    "intake.recorded",
    "fanout.planned",
    "runner.effect_done",
    "aggregate.recorded",
    "aggregate.completed",
    "responses.published",
)
#: Deaths before a process has joined its group: ``dsr up`` restarts it all the same.
STARTUP_POINTS = ("worker.starting", "runner.starting")


def crash_point(name: str) -> None:
    settings = for_process()
    if name not in settings.crash_points:
        return
    marker = crash_marker(settings.home, name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # crashed here once already
    os.kill(os.getpid(), signal.SIGKILL)


def crash_marker(home: Path, name: str) -> Path:
    return home / "run" / f"crashed-{name}"
