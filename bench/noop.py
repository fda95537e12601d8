"""Connectors for the benchmark: one that does no I/O, so a run measures the pipeline's
own overhead, and one that takes as long as a real system's API does."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from connectors.base import CheckResult, Connector, Identifiers, OperationResult
from streams.records import Kind


class NoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoopConnector(Connector[NoopConfig]):
    """Answers disclosure and erasure at once, with no records and nothing changed."""

    name = "noop"
    Config = NoopConfig
    capabilities = frozenset({Kind.DISCLOSURE, Kind.ERASURE})

    def check(self) -> CheckResult:
        return CheckResult(True, "no I/O")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        return OperationResult()

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        return OperationResult(dry_run=dry_run)


class DirectoryConnector(NoopConnector):
    """A no-op directory that finds a customer id for an email, as a CRM would, so that
    the identity lookup phase has something to resolve."""

    name = "noop-directory"

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        email = identifiers.get("email")
        if not email:
            return OperationResult()
        return OperationResult(identities=[{"email": email, "customer_id": f"C-{email}"}])


class TimedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Every call takes this long; or, without it, a time between the two below.
    seconds: float | None = None
    low_ms: float = 20.0
    high_ms: float = 300.0


class TimedConnector(Connector[TimedConfig]):
    """A no-op that answers after a real system's time: ``seconds`` a call, or a time
    drawn log-uniformly between ``low_ms`` and ``high_ms`` (most calls quick, some slow,
    as with an HTTP API). Thread-safe, like the connectors it stands for."""

    name = "timed"
    Config = TimedConfig
    capabilities = frozenset({Kind.DISCLOSURE, Kind.ERASURE})

    def __init__(self, system: str, config: dict[str, object]) -> None:
        super().__init__(system, config)
        self._random = random.Random(system)

    def check(self) -> CheckResult:
        return CheckResult(True, "no I/O")

    def _wait(self) -> None:
        if self.config.seconds is not None:
            time.sleep(self.config.seconds)
            return
        low, high = math.log(self.config.low_ms), math.log(self.config.high_ms)
        time.sleep(math.exp(self._random.uniform(low, high)) / 1000)

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self._wait()
        return OperationResult()

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._wait()
        return OperationResult(dry_run=dry_run)
