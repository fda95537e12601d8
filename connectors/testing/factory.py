"""``conformance_tests(Harness)``: the standard tests every connector must pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from connectors.base import ConnectorBase
from connectors.testing.changes import ChangeTests
from connectors.testing.concurrency import ConcurrencyTests
from connectors.testing.failures import FailureTests
from connectors.testing.harness import Harness
from connectors.testing.reads import ReadTests
from connectors.testing.session import Session
from connectors.testing.traces import TraceTests


class ConformanceTests(ReadTests, ChangeTests, TraceTests, FailureTests, ConcurrencyTests):
    """The standard tests; ``conformance_tests()`` binds them to a harness.

    Each test seeds the system, builds a fresh connector from ``harness.config()``
    and closes it afterwards. A kind the connector does not declare skips its test.
    """

    __test__ = False
    harness: ClassVar[type[Harness]]

    @pytest.fixture
    def kit(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
        session = Session(self.harness(request, tmp_path))
        try:
            yield session
        finally:
            session.close()


def conformance_tests(harness: type[Harness]) -> type:
    """A pytest test class of the standard tests, run through ``harness``::

    TestBillingConformance = conformance_tests(BillingHarness)
    """
    if not (isinstance(harness, type) and issubclass(harness, Harness)):
        raise TypeError(f"conformance_tests() takes a Harness subclass, not {harness!r}")
    cls = getattr(harness, "connector_class", None)
    if not (isinstance(cls, type) and issubclass(cls, ConnectorBase)):
        raise TypeError(
            f"{harness.__name__}.connector_class must be a Connector or AsyncConnector subclass"
        )
    doc = f"The conformance tests of {cls.__name__}, on the system {harness.system!r}."
    attrs = {"harness": harness, "__test__": True, "__doc__": doc}
    return type(f"Test{harness.__name__}", (ConformanceTests,), attrs)
