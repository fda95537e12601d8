"""What a disclosure shows of an object's content.

JSON objects (``application/json``, ``*+json``, or a ``.json`` key with a
generic content type) are decoded; ``text/*`` objects are given as text; both
only up to the size limit. Anything else is listed without its content, and
the record says why.
"""

from __future__ import annotations

import json
from typing import Any, Literal

Kind = Literal["json", "text", "other"]

GENERIC_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})


def kind_of(content_type: str, key: str) -> Kind:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media in GENERIC_TYPES and key.lower().endswith(".json"):
        return "json"
    if media.startswith("text/"):
        return "text"
    return "other"


def content(kind: Kind, content_type: str, data: bytes | None, limit: int) -> dict[str, Any]:
    """``{"content": ...}``, or ``{"content_omitted": why}``."""
    if kind == "other":
        return {"content_omitted": f"not JSON or text ({content_type or 'no content type'})"}
    if data is None or len(data) > limit:
        return {"content_omitted": f"larger than {limit} bytes"}
    if kind == "json":
        try:
            return {"content": load_json(data)}
        except ValueError:
            pass  # given as text below, if it is text
    try:
        return {"content": data.decode(_charset(content_type))}
    except (UnicodeDecodeError, LookupError):
        return {"content_omitted": "not valid text in its declared encoding"}


def load_json(data: bytes) -> Any:
    """Decode JSON; a ``ValueError`` for anything else, including NaN and absurd nesting."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"
