"""The errors a connector raises, and what the runner does with each.

    ConnectorError
    ├── FatalError          the task fails; retrying will not help
    │   └── ConfigError     the connector's config or the system's schema is wrong
    ├── RetriableError      transient; retried after at least ``retry_after`` seconds
    │   └── CallTimeout     the connector did not answer within its call timeout
    └── NotSupported        the connector cannot do this operation

An unknown data subject is not an error: the operation returns an empty result.

Messages end up in task results and logs, so they must never contain
identifiers or record values.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import ClassVar

#: S3 error codes worth another attempt: throttling and the service's own failures
#: (the S3 connector, and the pipeline's S3 package store).
S3_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)


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


class CallTimeout(RetriableError):
    """The connector did not answer within its system's ``call_timeout_seconds``."""

    code = "timeout"


class NotSupported(ConnectorError):
    """The connector does not implement this operation, or not with its current config."""

    code = "not_supported"


def parse_retry_after(value: str | None, cap: float | None = None) -> float | None:
    """An HTTP ``Retry-After`` (delta seconds or an HTTP date) as seconds from now,
    at most ``cap``; None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    seconds = max(seconds, 0.0)
    return min(seconds, cap) if cap is not None else seconds
