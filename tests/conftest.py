"""Say in the test output which tests on real servers ran, and why any were skipped: a
green run without them proves less, so it must not look the same."""

from __future__ import annotations

from collections import Counter

import pytest

#: Markers of tests that need a server this machine may lack.
SERVERS = {"kafka": "Apache Kafka cluster", "postgres": "PostgreSQL"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran: Counter[str] = Counter()
    skipped: dict[str, Counter[str]] = {m: Counter() for m in SERVERS}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            marks = set(getattr(report, "keywords", {}))
            for marker in SERVERS:
                if marker not in marks and f"[{marker}" not in report.nodeid:
                    continue
                if outcome == "skipped" and isinstance(report.longrepr, tuple):
                    skipped[marker][str(report.longrepr[2]).removeprefix("Skipped: ")] += 1
                elif report.when == "call":
                    ran[marker] += 1
    for marker, name in SERVERS.items():
        if not ran[marker] and not skipped[marker]:
            continue
        why = "".join(f", {n} skipped: {reason}" for reason, n in skipped[marker].items())
        terminalreporter.write_line(f"{name} tests: {ran[marker]} ran{why}")
