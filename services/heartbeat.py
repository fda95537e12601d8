"""Heartbeats: each worker and runner writes one from its own loop, so a process that is
alive but stuck (an event loop that does not come back, a frozen runner) stops beating.

``$DSR_HOME/run/heartbeats/<name>.json`` holds the process's name, kind, pid and the time
of its last beat; ``dsr health`` reads them (a container's readiness and liveness probe),
and so do the dashboard and ``dsr top``. A runner's beat also lists the tasks it has in
hand, so ``dsr status`` tells a task a runner is running from one still queued.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.files import StatusFile
from services.processes import read_processes
from services.settings import Settings

log = logging.getLogger("dsr.heartbeat")

Kind = Literal["worker", "runner", "exporter"]

#: Seconds between beats (``DSR_HEARTBEAT_INTERVAL_S``).
INTERVAL_S = 2.0
#: A running process whose last beat is older than this many of its intervals is shown
#: as frozen: 15 s at the default interval.
FROZEN_AFTER_BEATS = 7.5
FROZEN_AFTER_S = FROZEN_AFTER_BEATS * INTERVAL_S
#: Seconds within which a task taken in hand shows in the beat's file.
IN_HAND_EVERY_S = 0.25


def directory(home: Path) -> Path:
    return home / "run" / "heartbeats"


@dataclass(frozen=True)
class Beat:
    name: str
    kind: str
    pid: int
    at: float
    #: Tasks in hand, by task id: ``{"system", "since", "attempt"}`` (runners only).
    tasks: dict[str, dict[str, Any]] | None = None
    #: The process's seconds between beats.
    every: float = INTERVAL_S

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.at

    def frozen(self, now: float | None = None) -> bool:
        """Whether the process has missed ``FROZEN_AFTER_BEATS`` of its beats."""
        return self.age(now) > FROZEN_AFTER_BEATS * self.every


class Heart:
    """Writes this process's beat at most every ``interval`` seconds; ``beat()`` is called
    from the process's loop, on every turn.

    A runner also says which tasks it holds (``working``/``done``, from its lanes). A
    reporter thread writes a change of those within ``IN_HAND_EVERY_S``, keeping the time
    of the loop's last beat, so a stuck loop still ages while its task in hand shows.
    """

    def __init__(
        self,
        home: Path,
        name: str,
        kind: Kind,
        interval: float = INTERVAL_S,
        on_beat: Callable[[float], object] | None = None,
    ) -> None:
        self.path = directory(home) / f"{name}.json"
        self._file = StatusFile(self.path, log)
        self.name, self.kind, self.interval = name, kind, interval
        #: Told the time of each beat written (the process's metric of it).
        self.on_beat = on_beat
        self._last = 0.0
        self._tasks: dict[str, dict[str, Any]] = {}
        self._changed = threading.Event()
        self._lock = threading.Lock()
        self._reporter: threading.Thread | None = None

    @classmethod
    def for_process(
        cls, settings: Settings, kind: Kind, on_beat: Callable[[float], object] | None = None
    ) -> Heart:
        """Named as ``dsr up`` names the process (``DSR_COMPONENT``), else by its kind
        (one process of a kind a container, as in infra/k8s)."""
        name = settings.component or kind
        return cls(settings.home, name, kind, settings.heartbeat_interval_s, on_beat)

    def beat(self) -> None:
        now = time.time()
        if now - self._last < self.interval / 2:  # a timer may fire a little early
            return
        self._last = now
        self._write()
        if self.on_beat is not None:
            self.on_beat(now)

    def working(self, task_id: str, system: str, attempt: int) -> None:
        """``task_id`` is in hand (its ``attempt``-th call); shown until ``done``."""
        since = self._tasks.get(task_id, {}).get("since") or time.time()
        self._tasks[task_id] = {"system": system, "since": since, "attempt": attempt}
        self._report()

    def done(self, task_id: str) -> None:
        if self._tasks.pop(task_id, None) is not None:
            self._report()

    def _report(self) -> None:
        self._changed.set()
        if self._reporter is None:
            with self._lock:  # two lanes may report first at once: one reporter
                if self._reporter is None:
                    self._reporter = threading.Thread(
                        target=self._write_changes, name="heartbeat-tasks", daemon=True
                    )
                    self._reporter.start()

    def _write_changes(self) -> None:
        while True:
            self._changed.wait()
            time.sleep(IN_HAND_EVERY_S)  # a batch of changes, one write
            self._changed.clear()
            self._write()

    def _write(self) -> None:
        with self._lock:
            body: dict[str, Any] = {
                "name": self.name,
                "kind": self.kind,
                "pid": os.getpid(),
                "at": self._last,
                "every": self.interval,
            }
            if self.kind == "runner":
                body["tasks"] = dict(self._tasks)
            self._file.write(json.dumps(body).encode())


def read(home: Path) -> dict[str, Beat]:
    """Every process's last beat, by name."""
    beats = {}
    for path in sorted(directory(home).glob("*.json")):
        try:
            body = json.loads(path.read_text())
            beats[body["name"]] = Beat(
                body["name"],
                body["kind"],
                int(body["pid"]),
                body["at"],
                body.get("tasks"),
                float(body.get("every", INTERVAL_S)),
            )
        except (OSError, ValueError, KeyError):
            continue  # being replaced, or not ours
    return beats


def problems(home: Path, names: list[str], max_age: float) -> list[str]:
    """Why the named processes (all that beat, when none is named) are not healthy."""
    beats = read(home)
    if not names and not beats:
        return [f"no heartbeat in {directory(home)}"]
    found = []
    for name in names or sorted(beats):
        beat = beats.get(name)
        if beat is None:
            found.append(f"{name}: no heartbeat")
        elif beat.age() > max_age:
            found.append(f"{name}: last heartbeat {beat.age():.0f}s ago (pid {beat.pid})")
    return found


def view(home: Path, supervised: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each process ``dsr up`` supervises, as the dashboard and ``dsr top`` show it: its
    state (``running``, ``frozen``: alive but its loop has missed
    ``FROZEN_AFTER_BEATS`` of its beats, ``down`` or ``crash loop``), restarts and
    heartbeat age."""
    beats = read(home)
    now = time.time()
    shown = []
    for name, p in supervised.items():
        beat = beats.get(name)
        if beat is not None and beat.pid != p.get("pid"):
            beat = None  # an earlier process's, of the same name
        age = round(beat.age(now), 1) if beat is not None else None
        if p.get("crash_loop"):
            state = "crash loop"
        elif not p.get("running"):
            state = "down"
        elif beat is not None and beat.frozen(now):
            state = "frozen"
        else:
            state = "running"
        shown.append(
            {k: p.get(k) for k in ("running", "restarts", "crash_loop")}
            | {"name": name, "state": state, "heartbeat_age_s": age}
        )
    return shown


def supervised(home: Path) -> list[dict[str, Any]]:
    """``view`` of what ``dsr up``'s supervisor last reported; none when none runs."""
    body = read_processes(home)
    return view(home, body["processes"]) if body is not None else []
