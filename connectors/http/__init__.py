"""The HTTP connector: a subject's data behind a REST API, reached with httpx."""

from connectors.http.config import (
    CursorPages,
    Endpoint,
    Endpoints,
    HTTPConfig,
    LinkPages,
    NumberedPages,
)
from connectors.http.connector import HTTPConnector

__all__ = [
    "CursorPages",
    "Endpoint",
    "Endpoints",
    "HTTPConfig",
    "HTTPConnector",
    "LinkPages",
    "NumberedPages",
]
