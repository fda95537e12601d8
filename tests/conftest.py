"""Say in the test output which tests on real servers ran, and why any were skipped: a
green run without them proves less, so it must not look the same. And keep the
integration tests together, first: with ``-n 2`` (``make test``), one process takes them,
one after another, and the other the Apache Kafka cluster's and most of the rest."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

#: Markers of tests that need a server this machine may lack.
SERVERS = {"kafka": "Apache Kafka cluster", "postgres": "PostgreSQL"}


#: Tests that start brokers and processes of their own, in two groups: the Apache Kafka
#: cluster's, and the others. Within a group they run one after another.
INTEGRATION = "tests/integration/"
APACHE_KAFKA = "tests/integration/kafka/"


def _group(nodeid: str) -> str | None:
    """The group of the test ``nodeid``, if it is in one."""
    if nodeid.startswith(APACHE_KAFKA):
        return APACHE_KAFKA
    return INTEGRATION if nodeid.startswith(INTEGRATION) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tests first, then the Apache Kafka cluster's: with ``-n 2`` one
    process starts on each group at once."""
    order = {INTEGRATION: 0, APACHE_KAFKA: 1, None: 2}
    items.sort(key=lambda item: order[_group(item.nodeid)])  # stable: in file order


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n 2`` (``make test``): each group one unit of work, run by one process,
    the integration tests by one, the Apache Kafka cluster's by the other, each process
    taking the other tests as it is free."""
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
