"""Where a process's CPU goes during a run: py-spy samples, sorted into components.

py-spy samples the running processes from outside (no code of theirs changes, and it
does not pause them), so the profile is of the run being measured. It samples the
thread that holds the GIL, so a thread waiting on a lock or a socket is not counted as
busy. A sample is put in the component of its innermost frame that belongs to one (a
``json`` call made by the ledger counts as the ledger's); the shares times the
process's CPU per request give milliseconds per request.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: (component, how the paths of its frames start, or a directory in them); the first
#: component a frame matches is its own.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("logging/", "services/logs.py")),
    ("metrics", ("prometheus_client/", "services/monitoring/")),
    ("crypto", ("cryptography/", "services/crypto/", "services/signing.py")),
    ("package files", ("services/delivery/", "fpdf/", "reportlab/")),
    ("notices", ("streams/agents/notices.py", "services/notify/", "email/")),
    ("ledger statements", ("sqlalchemy/", "sqlite3/", "psycopg/", "services/ledger/")),
    ("records and validation", ("pydantic", "jsonschema", "streams/records/")),
    ("kafka client", ("aiokafka/", "kafka/", "streams/transport.py", "connectors/runner/sending")),
    ("connector", ("connectors/sql/", "connectors/s3/", "connectors/http/", "bench/noop.py")),
    ("runner", ("connectors/",)),
    ("faust machinery", ("faust/", "mode/", "asyncio/", "venusian/")),
    ("pipeline", ("streams/", "services/")),
)

_FRAME = re.compile(r"\((?P<file>[^():]+):\d+\)$")


def component(stack: str) -> str:
    """The component of one ``;``-joined stack (outermost frame first)."""
    for frame in reversed(stack.split(";")):
        match = _FRAME.search(frame)
        if match is None:
            continue
        path = "/" + match["file"]  # py-spy shortens paths to the package's own
        for name, fragments in COMPONENTS:
            if any("/" + f in path for f in fragments):
                return name
    return "other"


def shares(raw: str) -> dict[str, float]:
    """Each component's share of the samples in py-spy's ``raw`` (collapsed) output."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        # py-spy, reading a process it does not pause, now and then takes a string of
        # the program's for a frame's name, newlines and all: the piece of it that ends
        # in digits would pass for a sample of that many. A sample's innermost frame is
        # a function at a file and line.
        if n.isdigit() and _FRAME.search(stack):
            counts[component(stack)] += int(n)
    total = sum(counts.values())
    return {name: n / total for name, n in counts.most_common()} if total else {}


class Sampler:
    """``py-spy record`` on each named process, from ``start()`` until ``stop()``."""

    def __init__(self, pids: dict[str, int], out: Path, rate: int = 97) -> None:
        self.pids, self.out, self.rate = pids, out, rate
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    @staticmethod
    def program() -> str | None:
        """py-spy, installed beside this Python (``.[bench]``) or on the PATH."""
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self._running[name] = subprocess.Popen(
                [self.program() or "py-spy", "record", "--pid", str(pid), "--rate", str(self.rate)]
                + ["--nonblocking", "--gil", "--format", "raw", "--output", str(self._file(name))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> dict[str, dict[str, float]]:
        """Stop sampling; each process's component shares."""
        for proc in self._running.values():
            proc.send_signal(signal.SIGINT)
        out: dict[str, dict[str, float]] = {}
        for name, proc in self._running.items():
            proc.wait(timeout=60)
            path = self._file(name)
            if path.exists():
                out[name] = shares(path.read_text())
        return out

    def _file(self, name: str) -> Path:
        return self.out / f"{name}.txt"


def per_request_ms(
    process_shares: dict[str, dict[str, float]], cpu_s_per_request: dict[str, float]
) -> dict[str, dict[str, float]]:
    """CPU milliseconds per request of each component in each sampled process."""
    return {
        name: {
            c: round(share * cpu_s_per_request.get(name, 0.0) * 1000, 2)
            for c, share in comps.items()
        }
        for name, comps in process_shares.items()
    }
