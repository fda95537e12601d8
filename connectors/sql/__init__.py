"""The SQL connector: personal data in tables of any database SQLAlchemy can reach."""

from connectors.sql.config import (
    ErasureSpec,
    KeySpec,
    ProvisionLogSpec,
    SQLConfig,
    SuspensionSpec,
    TableSpec,
)
from connectors.sql.connector import SQLConnector

__all__ = [
    "ErasureSpec",
    "KeySpec",
    "ProvisionLogSpec",
    "SQLConfig",
    "SQLConnector",
    "SuspensionSpec",
    "TableSpec",
]
