"""The errors a connector raises, and what the runner does with each.

    ConnectorError
    ├── FatalError          the task fails; retrying will not help
    │   └── ConfigError     the connector's config or the system's schema is wrong
    ├── RetriableError      transient; retried after at least ``retry_after`` seconds
    └── NotSupported        the connector cannot do this operation

An unknown data subject is not an error: the operation returns an empty result.

Messages end up in task results and logs, so they must never contain
identifiers or record values.
"""

from __future__ import annotations

from typing import ClassVar


class ConnectorError(Exception):
    """Base class of every connector error."""

    code: ClassVar[str] = "connector_error"


class FatalError(ConnectorError):
    """The operation failed and retrying will not help."""

    code = "fatal"


class ConfigError(FatalError):
    """The connector is configured wrongly, or the system does not match its config."""

    code = "config_error"


class RetriableError(ConnectorError):
    """A transient failure: try again, waiting at least ``retry_after`` seconds if given."""

    code = "retriable"

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotSupported(ConnectorError):
    """The connector does not implement this operation, or not with its current config."""

    code = "not_supported"
