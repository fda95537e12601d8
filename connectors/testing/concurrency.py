"""The kit's test of calls at once: what a runner does with a system's ``concurrency``
above 1 (``docs/connectors.md``), calling one connector from several threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from connectors.testing.calls import READS, fail, label, run
from connectors.testing.compare import difference, snapshot
from connectors.testing.session import Session
from streams.records import Kind

#: Calls the kit makes at once, half for each person.
AT_ONCE = 8
#: How long a call may wait for the others to start with it.
START_TIMEOUT_S = 30.0


class ConcurrencyTests:
    def test_reads_at_once_answer_as_one_at_a_time(self, kit: Session) -> None:
        kinds = [k for k in READS if kit.supports(k)]
        if not kinds:
            pytest.skip(f"{type(kit.connector).__name__} declares no read")
        s = kit.seeded
        people = {"subject": s.subject, "other": s.other}
        alone = {
            (kind, name): snapshot(kit.read(kind, who).records)
            for kind in kinds
            for name, who in people.items()
        }
        calls = [(kinds[i % len(kinds)], ("subject", "other")[i % 2]) for i in range(AT_ONCE)]
        start = threading.Barrier(len(calls), timeout=START_TIMEOUT_S)

        def call(kind: Kind, name: str) -> list[str]:
            start.wait()
            return snapshot(run(kit.connector, kind, people[name]).records)

        with ThreadPoolExecutor(len(calls), thread_name_prefix="kit-call") as pool:
            futures = [pool.submit(call, kind, name) for kind, name in calls]
        for (kind, name), future in zip(calls, futures, strict=True):
            what = f"{label(kind)} for the {name}"
            if (exc := future.exception()) is not None:
                if isinstance(exc, pytest.fail.Exception):
                    raise exc
                fail(
                    f"{what}, called from {AT_ONCE} threads at once, raised "
                    f"{type(exc).__name__}: {exc}\n{_ADVICE}"
                )
            if (got := future.result()) != alone[kind, name]:
                fail(
                    f"{what}, called from {AT_ONCE} threads at once, answered otherwise than "
                    f"alone:\n{difference(alone[kind, name], got)}\n{_ADVICE}"
                )


_ADVICE = (
    "A system's `concurrency` above 1 in the data map has the runner call its connector "
    "from that many threads at once. Keep per-call state out of the connector object, and "
    "take a connection per call (or from a thread-safe pool); or leave `concurrency` at 1."
)
