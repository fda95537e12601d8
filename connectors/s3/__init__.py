"""The S3 connector: a subject's objects in one bucket, found by key patterns."""

from connectors.s3.config import (
    CorrectionSpec,
    ProvisionLogSpec,
    S3Config,
    SuspensionSpec,
    TagSpec,
)
from connectors.s3.connector import S3Connector
from connectors.s3.keys import KeyPattern, parse_pattern

__all__ = [
    "CorrectionSpec",
    "KeyPattern",
    "ProvisionLogSpec",
    "S3Config",
    "S3Connector",
    "SuspensionSpec",
    "TagSpec",
    "parse_pattern",
]
