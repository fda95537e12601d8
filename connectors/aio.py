"""Async connectors: the same contract, with ``async def`` operations.

Use it when the system's client library is asyncio-native (httpx.AsyncClient,
aiobotocore, asyncpg)::

    class BillingConnector(AsyncConnector[BillingConfig]):
        name = "billing"
        Config = BillingConfig
        capabilities = frozenset({Kind.DISCLOSURE, Kind.ERASURE})

        async def check(self) -> CheckResult: ...
        async def disclose(self, identifiers): ...
        async def erase(self, identifiers, *, grounds, dry_run=False): ...

The runner awaits these on an event loop of its own (``connectors.loop``), so
blocking the loop stalls only other async connectors; a connector with blocking
I/O should subclass ``Connector`` instead. When a task needs several lookups
(several discovered order ids), they run concurrently.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from connectors.base import ConfigT, ConnectorBase, Identifiers
from connectors.results import CheckResult, OperationResult
from streams.records import Change, Kind


class AsyncConnector(ConnectorBase[ConfigT]):
    """One system's connector whose operations are coroutines."""

    _contract = True

    @abstractmethod
    async def check(self) -> CheckResult:
        """Reach the system and confirm the config matches it."""

    async def disclose(self, identifiers: Identifiers) -> OperationResult:
        raise self._not_supported(Kind.DISCLOSURE)

    async def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        raise self._not_supported(Kind.CORRECTION)

    async def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        raise self._not_supported(Kind.SUSPENSION)

    async def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        raise self._not_supported(Kind.ERASURE)

    async def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        raise self._not_supported(Kind.THIRD_PARTY_RECORDS)

    async def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        raise self._not_supported(Kind.THIRD_PARTY_STOP)
