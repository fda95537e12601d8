"""Say in the test output which tests on real servers ran, and why any were skipped: a
green run without them proves less, so it must not look the same. And hand out the
integration tests first, a file at a time: with ``-n 2`` (``make test``), each process
takes the next file as it is free, the Apache Kafka cluster's tests as one, and the
quick tests fill in at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

#: Markers of tests that need a server this machine may lack.
SERVERS = {"kafka": "Apache Kafka cluster", "postgres": "PostgreSQL"}


#: Tests that start brokers and processes of their own: the Apache Kafka cluster's, and
#: the others. They take minutes where the rest take seconds.
INTEGRATION = "tests/integration/"
APACHE_KAFKA = "tests/integration/kafka/"


def _group(nodeid: str) -> str | None:
    """The unit of work of the test ``nodeid`` if it shares one: the Apache Kafka
    cluster's tests (one cluster), or an integration test's file."""
    if nodeid.startswith(APACHE_KAFKA):
        return APACHE_KAFKA
    return nodeid.partition("::")[0] if nodeid.startswith(INTEGRATION) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tests first, so that the quick ones fill in at the end."""
    items.sort(key=lambda item: not item.nodeid.startswith(INTEGRATION))  # stable


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n 2`` (``make test``): the tests of a unit (``_group``) run one after
    another in one process, which takes the next unit as it is free. (xdist hands out
    the units of several tests first, the largest first, then the rest in order.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid) or nodeid

    return Grouped(config, log)


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
