"""One test's harness, seeded people and connector, closed afterwards."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import pytest

from connectors.base import ConnectorBase
from connectors.results import OperationResult
from connectors.testing.calls import READS, attempt, fail, run
from connectors.testing.compare import snapshot
from connectors.testing.harness import Harness, Seeded
from streams.records import Kind


class Session:
    """Seeds once, then builds the connector from ``harness.config()`` on first use."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self._built: list[ConnectorBase[Any]] = []

    @cached_property
    def seeded(self) -> Seeded:
        seeded = attempt(f"{type(self.harness).__name__}.seed()", self.harness.seed)
        if not isinstance(seeded, Seeded):
            fail(f"Harness.seed() must return a Seeded, not {type(seeded).__name__}")
        if not seeded.subject or not seeded.other:
            fail("Harness.seed() must identify both the subject and the other person")
        return seeded

    @cached_property
    def connector(self) -> ConnectorBase[Any]:
        """The connector under test, built after seeding."""
        _ = self.seeded
        return self.build()

    def build(self) -> ConnectorBase[Any]:
        harness = type(self.harness)
        config = attempt(f"{harness.__name__}.config()", self.harness.config)
        connector = harness.connector_class(harness.system, config)
        self._built.append(connector)
        return connector

    def close(self) -> None:
        for connector in self._built:
            connector.close()

    def supports(self, kind: Kind) -> bool:
        return self.connector.supports(kind)

    def require(self, *kinds: Kind) -> None:
        """Skip the test unless the connector declares every one of ``kinds``."""
        for kind in kinds:
            if not self.supports(kind):
                pytest.skip(f"{type(self.connector).__name__} does not declare {kind}")

    def read(self, kind: Kind, who: dict[str, str]) -> OperationResult:
        return run(self.connector, kind, who)

    def view(self, only: str | None = None) -> dict[str, list[str]]:
        """What the connector shows of both people (or ``only`` "subject" or "other"),
        to compare before and after a change."""
        people = {"subject": self.seeded.subject, "other": self.seeded.other}
        return {
            f"{name}'s {kind.replace('_', ' ')}": snapshot(self.read(kind, who).records)
            for kind in READS
            if self.supports(kind)
            for name, who in people.items()
            if only in (None, name)
        }
