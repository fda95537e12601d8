"""Keep the stack running: restart whatever dies, with backoff; report crash loops.

``dsr up`` calls ``Supervisor.tick`` a few times a second. A worker or runner that exits
is started again after a delay that doubles with each recent restart (0.5 s, 1 s, 2 s …
up to 30 s); the embedded broker is started again at once, on the same port, and every
open request is re-driven from the ledger. A process restarted ``loop_restarts`` times
within ``loop_window_s`` is in a crash loop: that is logged once, written to
``<DSR_HOME>/run/processes.json`` (``dsr status`` shows it), and it is still restarted,
at the longest delay, while the rest of the stack keeps going.

A worker or runner that is alive but stuck (its loop does not come back: a call that
never returns, a stopped process) stops beating (``services.heartbeat``). Once its beat
has not changed for ``frozen_after_s`` (``DSR_RESTART_FROZEN_AFTER_S``), it is killed, as
a crash would kill it, and restarted like any process that died; what it held unacked
is read again by the next, and its effects are idempotent. So is one stuck before its
first beat (a stopped process, a read that never returns), once ``unstarted_after_s``
(``DSR_RESTART_UNSTARTED_AFTER_S``) has passed since the supervisor first saw it. So
is the embedded broker that stops answering (asked every ``BROKER_PROBE_S`` with a
request every broker answers): killed, it is restarted as when it dies.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services import heartbeat
from services.files import StatusFile
from services.processes import processes_file
from services.stack import Stack

log = logging.getLogger("dsr.supervisor")

BROKER = "broker"
#: How often the embedded broker is asked whether it answers, in seconds; a broker that
#: does not answer takes up to 2 s of a tick (``broker.answers``: 1 s to connect, 1 s
#: for the answer).
BROKER_PROBE_S = 2.0


@dataclass
class Health:
    """One process's restarts, as the supervisor saw them."""

    restarts: deque[float] = field(default_factory=deque)
    total: int = 0
    #: When a dead process is due to be started again; None while it runs.
    due: float | None = None
    crash_loop: bool = False
    last_exit: int | None = None
    #: The process's last beat seen (its pid and time; the embedded broker's: when it
    #: last answered), and when the supervisor first saw it, by its own clock: a beat
    #: that stops changing ages by that clock alone.
    beat: tuple[int, float] | None = None
    beat_seen: float = 0.0
    #: When the supervisor last asked the embedded broker whether it answers.
    asked: float = float("-inf")


@dataclass
class Supervisor:
    stack: Stack
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    loop_restarts: int = 5
    loop_window_s: float = 120.0
    #: Seconds a process may go without a new heartbeat before it is killed to be
    #: restarted; 0: never.
    frozen_after_s: float = 0.0
    #: Seconds a process may run without a first heartbeat (it is starting: joining its
    #: group, a first beat's interval) before it is killed to be restarted; 0: never.
    unstarted_after_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    health: dict[str, Health] = field(default_factory=dict)
    #: ``report()``'s file, for ``dsr status`` and ``dsr ps``.
    _report: StatusFile = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._report = StatusFile(processes_file(self.stack.settings.home), log)

    def tick(self) -> None:
        """Restart the broker if it died, and every process that is due."""
        now = self.clock()
        if not self.stack.broker_alive():
            self._restarted(BROKER, now, self.stack.broker_exit_code())
            n = self.stack.restart_broker()
            log.warning("broker restarted; re-drove %d open request(s)", n)
        self.stack.check_datamap()
        if self.frozen_after_s or self.unstarted_after_s:
            self._kill_frozen(now)
        if self.frozen_after_s:
            self._kill_frozen_broker(now)
        for name in self.stack.check_alive():
            h = self.health.setdefault(name, Health())
            if h.due is None:
                h.last_exit = self.stack.exit_code(name)
                h.due = now + self._delay(h, now)
                log.warning(
                    "%s exited with %s; restarting in %.1fs", name, h.last_exit, h.due - now
                )
            elif now >= h.due:
                self._restarted(name, now, h.last_exit)
                h.due = None
                self.stack.spawn(name)
        self._write()

    def _kill_frozen(self, now: float) -> None:
        """Kill each running process whose beat has not changed for ``frozen_after_s``,
        or that has not beaten for ``unstarted_after_s`` since it was first seen; ``tick``
        then restarts it. The time is the supervisor's own, so a step of the wall clock
        kills nothing."""
        beats, dead = heartbeat.read(self.stack.settings.home), self.stack.check_alive()
        for name in self.stack.components:
            pid = self.stack.pid(name)
            if pid is None or name in dead:
                continue
            beat = beats.get(name)
            started = beat is not None and beat.pid == pid  # not an earlier process's
            at = beat.at if beat is not None and started else float("-inf")
            silent = self._unchanged_for(name, (pid, at), now)
            limit = self.frozen_after_s if started else self.unstarted_after_s
            if limit and silent > limit:
                log.error(
                    "%s is frozen: %s for %.0fs; killing it (pid %d)",
                    name,
                    "no heartbeat" if started else "started, and not one heartbeat",
                    silent,
                    pid,
                )
                self.stack.kill(name)

    def _kill_frozen_broker(self, now: float) -> None:
        """Kill the embedded broker if, alive, it has not answered for
        ``frozen_after_s``; the next ``tick`` restarts it. Every client waits on a
        broker that is frozen, and none of them can end it."""
        broker = self.stack.broker
        if broker is None or not self.stack.broker_alive():
            return
        h = self.health.setdefault(BROKER, Health())
        pid = broker.process.pid
        known = h.beat is not None and h.beat[0] == pid
        if known and now - h.asked < BROKER_PROBE_S:
            return
        h.asked = now
        last = h.beat[1] if known and h.beat else now  # a new broker counts from now
        answered = now if broker.answers() else last  # its beat: when it last answered
        if (silent := self._unchanged_for(BROKER, (pid, answered), now)) > self.frozen_after_s:
            log.error("broker is frozen: no answer for %.0fs; killing it (pid %d)", silent, pid)
            self.stack.kill(BROKER)

    def _unchanged_for(self, name: str, beat: tuple[int, float], now: float) -> float:
        """How long, by the supervisor's clock, ``name``'s beat has been ``beat``."""
        h = self.health.setdefault(name, Health())
        if h.beat != beat:
            h.beat, h.beat_seen = beat, now
        return now - h.beat_seen

    def _delay(self, h: Health, now: float) -> float:
        recent = sum(1 for t in h.restarts if now - t < self.loop_window_s)
        return min(self.max_backoff_s, self.backoff_s * 2**recent)

    def _restarted(self, name: str, now: float, exit_code: int | None) -> None:
        h = self.health.setdefault(name, Health())
        h.restarts.append(now)
        while h.restarts and now - h.restarts[0] >= self.loop_window_s:
            h.restarts.popleft()
        h.total += 1
        h.last_exit = exit_code
        looping = len(h.restarts) >= self.loop_restarts
        if looping and not h.crash_loop:
            log.error(
                "%s is in a crash loop: %d restarts in %.0fs; see its log",
                name,
                len(h.restarts),
                self.loop_window_s,
            )
        elif h.crash_loop and not looping:
            log.warning("%s is no longer in a crash loop", name)
        h.crash_loop = looping

    def report(self) -> dict[str, Any]:
        """Every supervised process: whether it runs, its restarts, and crash loops."""
        names = [BROKER, *self.stack.components] if self.stack.broker else [*self.stack.components]
        dead = set(self.stack.check_alive())
        out: dict[str, Any] = {}
        for name in names:
            h = self.health.get(name, Health())
            running = self.stack.broker_alive() if name == BROKER else name not in dead
            out[name] = {
                "running": running,
                "pid": self.stack.pid(name),
                "restarts": h.total,
                "crash_loop": h.crash_loop,
                "last_exit": h.last_exit,
            }
        return out

    def _write(self) -> None:
        """``report()`` for ``dsr status`` and ``dsr ps``; a disk with no room for it (the
        home's full) stops nothing (``StatusFile``)."""
        body = json.dumps({"at": time.time(), "processes": self.report()}, indent=1)
        self._report.write(body.encode())
