"""Connectors: how the pipeline reaches each internal system.

A connector is a ``Connector`` subclass registered under the ``dsr.connectors``
entry-point group. The runner (``python -m connectors.runner``) consumes a
system's task topic and calls its connector.
"""

from connectors.aio import AsyncConnector
from connectors.base import Connector, Identifiers
from connectors.dispatch import dispatch
from connectors.errors import (
    ConfigError,
    ConnectorError,
    FatalError,
    NotSupported,
    RetriableError,
)
from connectors.results import CheckResult, OperationResult, Withheld
from streams.records import Change, CorrectionReport, FieldChange, Kind

__all__ = [
    "AsyncConnector",
    "Change",
    "CheckResult",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "CorrectionReport",
    "FatalError",
    "FieldChange",
    "Identifiers",
    "Kind",
    "NotSupported",
    "OperationResult",
    "RetriableError",
    "Withheld",
    "dispatch",
]
