"""Connectors: how the pipeline reaches each internal system.

A connector is a ``Connector`` subclass registered under the ``dsr.connectors``
entry-point group. The runner (``python -m connectors.runner``) consumes a
system's task topic and calls its connector.
"""

from connectors.base import Connector, dispatch
from connectors.errors import (
    ConfigError,
    ConnectorError,
    FatalError,
    NotSupported,
    RetriableError,
)
from connectors.results import CheckResult, OperationResult, Withheld

__all__ = [
    "CheckResult",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "FatalError",
    "NotSupported",
    "OperationResult",
    "RetriableError",
    "Withheld",
    "dispatch",
]
