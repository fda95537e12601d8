"""Systems with real behaviour for whole-pipeline tests, named in a data map by import
path (``tests.integration.fakes:Class``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from connectors.base import Identifiers
from connectors.errors import RetriableError
from connectors.results import OperationResult
from connectors.sql import SQLConnector
from connectors.sql.config import SQLConfig


class FailingErasureConfig(SQLConfig):
    #: How many erasure calls fail (as transient errors) before erasures work.
    erase_failures: int = 0


class FailsToErase(SQLConnector):
    """A SQL system whose erasures fail ``erase_failures`` times, then work; its reads
    always work."""

    name = "fails_to_erase"
    Config = FailingErasureConfig

    def __init__(self, system: str, config: Any) -> None:
        super().__init__(system, config)
        self.failures_left = self.config.erase_failures  # type: ignore[attr-defined]

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RetriableError("the system is busy")
        return super().erase(identifiers, grounds=grounds, dry_run=dry_run)


class CountingConfig(SQLConfig):
    #: The system's own log of the calls it served: one JSON line per call.
    calls_file: str


class CountsCalls(SQLConnector):
    """A SQL system that logs every read and erasure it serves (the method and the
    identifiers asked about), so a test can tell a call made twice from one made once."""

    name = "counts_calls"
    Config = CountingConfig

    def _log(self, method: str, identifiers: Identifiers) -> None:
        line = json.dumps({"method": method, "identifiers": dict(identifiers)}, sort_keys=True)
        with open(self.config.calls_file, "a") as log:  # type: ignore[attr-defined]
            log.write(line + "\n")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self._log("disclose", identifiers)
        return super().disclose(identifiers)

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._log("erase", identifiers)
        return super().erase(identifiers, grounds=grounds, dry_run=dry_run)
