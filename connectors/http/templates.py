"""Filling an endpoint's path, query and body with the subject's identifiers.

Values are URL-encoded in paths (``/`` too, so a value is always one path
segment); httpx encodes query values. A value of ``.`` or ``..`` is refused:
servers resolve such a segment, which would send the request elsewhere.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from connectors.errors import FatalError
from connectors.http.config import Endpoint

_FORMATTER = string.Formatter()


def can_find(spec: Endpoint, identifiers: Mapping[str, str]) -> bool:
    """Whether the subject's identifiers fill every placeholder of ``spec``."""
    return all(identifiers.get(name) for name in spec.identifiers)


def path(template: str, identifiers: Mapping[str, str]) -> str:
    return _fill(template, identifiers, _path_segment)


def query(templates: Mapping[str, str], identifiers: Mapping[str, str]) -> dict[str, str]:
    return {k: _fill(v, identifiers, str) for k, v in templates.items()}


def body(
    template: Any,
    identifiers: Mapping[str, str],
    *,
    changes: Mapping[str, Any] | None = None,
    grounds: list[str] | None = None,
) -> Any:
    """The JSON body: ``"{changes}"`` and ``"{grounds}"`` become values, other strings text."""
    if isinstance(template, str):
        if template == "{changes}":
            return dict(changes or {})
        if template == "{grounds}":
            return list(grounds or [])
        return _fill(template, identifiers, str)
    if isinstance(template, dict):
        return {
            k: body(v, identifiers, changes=changes, grounds=grounds) for k, v in template.items()
        }
    if isinstance(template, list):
        return [body(v, identifiers, changes=changes, grounds=grounds) for v in template]
    return template


def _fill(template: str, identifiers: Mapping[str, str], encode: Any) -> str:
    out = []
    for literal, name, _, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(encode(identifiers[name]) if name in identifiers else "")
    return "".join(out)


def _path_segment(value: str) -> str:
    if value in (".", ".."):
        raise FatalError(
            "an identifier value is '.' or '..', which cannot stand in a URL path segment"
        )
    return quote(value, safe="")
