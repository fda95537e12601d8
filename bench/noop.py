"""A connector that does no I/O, so a benchmark measures the pipeline's own overhead."""

from __future__ import annotations

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
