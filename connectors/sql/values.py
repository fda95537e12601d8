"""Values: coercing them to a column's type, erasing them in place, making them JSON-ready.

``null`` and ``mask`` remove a value; ``hash`` pseudonymises it (``connectors.pseudonyms``:
HMAC-SHA256 under the deployment's erasure key, never a plain, guessable SHA-256).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Column

from connectors import pseudonyms
from connectors.errors import FatalError
from connectors.sql.config import Strategy


def python_type(column: Column[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def mask_value(column: Column[Any]) -> Any:
    py = python_type(column)
    if py is str:
        length = getattr(column.type, "length", None)
        return "*" * min(3, length or 3)
    if py is datetime:
        return datetime(1970, 1, 1, tzinfo=UTC if getattr(column.type, "timezone", False) else None)
    masks: dict[type, Any] = {
        bool: False,
        int: 0,
        float: 0.0,
        Decimal: Decimal(0),
        date: date(1970, 1, 1),
        time: time(0),
        bytes: b"***",
    }
    return masks.get(py) if py is not None else None


def _parse_bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "t", "y"):
        return True
    if text in ("false", "0", "no", "f", "n"):
        return False
    raise ValueError("not a boolean")


def _parse_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not an integer")
    return int(value)


_PARSERS: dict[type, Callable[[Any], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: float,
    Decimal: lambda v: Decimal(str(v)),
    str: str,
    uuid.UUID: lambda v: uuid.UUID(str(v)),
    datetime: lambda v: datetime.fromisoformat(str(v)),
    date: lambda v: date.fromisoformat(str(v)),
    time: lambda v: time.fromisoformat(str(v)),
}


def coerce(column: Column[Any], value: Any, table: str) -> Any:
    """``value`` as the column's Python type; FatalError, naming no value, if it cannot be."""
    py = python_type(column)
    parse = _PARSERS.get(py) if py is not None else None
    if value is None or parse is None or type(value) is py:
        return value
    try:
        return parse(value)
    except (ValueError, TypeError, ArithmeticError):
        assert py is not None
        raise FatalError(f"{table}.{column.name}: the value is not a valid {py.__name__}") from None


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)  # Decimal, UUID, and anything else


def anonymised(column: Column[Any], strategy: Strategy, value: Any) -> Any:
    if value is None or strategy == "null":
        return None
    if strategy == "mask":
        return mask_value(column)
    text = str(value)
    # Already a pseudonym: another one would make erasure non-idempotent.
    return text if pseudonyms.is_pseudonym(text) else pseudonyms.pseudonym(text)
