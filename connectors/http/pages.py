"""Reading every page of records from an endpoint, and finding the records in a reply.

Three ways to page (``pagination.type``):

- ``cursor``: the reply holds the next cursor at ``cursor_path``; it is sent
  back as the query parameter ``param`` until it is missing, null or empty.
- ``page``: pages ``start``, ``start + 1``, ... are asked for until one is empty.
- ``link``: the ``Link: <url>; rel="next"`` header is followed; a link to
  another origin is refused, since it would carry the auth headers there.

More than ``max_pages`` pages, or a cursor or link seen before, is a
``FatalError``: a disclosure must be complete, never quietly cut short.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.errors import FatalError
from connectors.http.api import API, Reply
from connectors.http.config import CursorPages, Endpoint, LinkPages, NumberedPages

Record = dict[str, Any]

_MISSING = object()


def fetch_records(
    api: API,
    what: str,
    spec: Endpoint,
    url: str,
    params: dict[str, str],
    json_body: Any = None,
) -> list[Record] | None:
    """Every record, across pages; None when the API says the subject is unknown (404)."""
    prefix = f"system {api.system!r}: {what}"
    paging = spec.pagination
    records: list[Record] = []
    seen: set[str] = set()
    params = dict(params)
    if isinstance(paging, NumberedPages):
        params[paging.param] = str(paging.start)
        if paging.size_param and paging.size:
            params[paging.size_param] = str(paging.size)
    for page in range(api.cfg.max_pages):
        reply = api.send(what, spec.method, url, params=params, json_body=json_body)
        if reply is None:
            return None if page == 0 else records
        found = records_in(prefix, reply.body, spec.records_path)
        records += found
        step = _next(prefix, api, paging, reply, page, bool(found))
        if step is None:
            return records
        if step in seen:
            raise FatalError(f"{prefix}: pagination returned to a page it had read")
        seen.add(step)
        if isinstance(paging, LinkPages):
            url, params = step, {}
        else:
            assert paging is not None
            params[paging.param] = step
    raise FatalError(f"{prefix}: more than max_pages ({api.cfg.max_pages}) pages of records")


def _next(prefix: str, api: API, paging: Any, reply: Reply, page: int, found: bool) -> str | None:
    """The next page's cursor, number or URL; None after the last page."""
    if isinstance(paging, CursorPages):
        cursor = dig(reply.body, paging.cursor_path, default=None)
        if cursor is None or cursor == "":
            return None
        if isinstance(cursor, bool) or not isinstance(cursor, str | int):
            raise FatalError(f"{prefix}: the cursor at {paging.cursor_path} is not a string")
        return str(cursor)
    if isinstance(paging, NumberedPages):
        return str(paging.start + page + 1) if found else None
    if isinstance(paging, LinkPages) and reply.next_link:
        try:
            nxt = reply.url.join(reply.next_link)
        except (httpx.InvalidURL, ValueError):
            raise FatalError(f"{prefix}: the Link header's next URL is not a URL") from None
        if not api.same_origin(nxt):
            raise FatalError(f"{prefix}: the Link header points to another origin; not following")
        return str(nxt)
    return None


def records_in(prefix: str, body: Any, path: str | None) -> list[Record]:
    """The records at ``path``: a list of objects, one object, or null for none."""
    value = body if not path else dig(body, path)
    if value is _MISSING:
        raise FatalError(f"{prefix}: the response has nothing at {path}")
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    where = path or "the top level"
    raise FatalError(f"{prefix}: expected a list of objects at {where}, found {_kind(value)}")


def dig(body: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at a dotted path (``data.items``, ``results.0.id``), or ``default``."""
    value = body
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return default
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list holding something other than objects"
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
