"""The HTTP connector's config, as it appears under a system in the data map::

    connector: http
    identifiers: [email]
    config:
      base_url: https://api.example-saas.com/v2
      headers:                                  # sent with every request; kept secret
        Authorization: Bearer ${SAAS_TOKEN}
      timeout_s: 10
      endpoints:
        check: {method: GET, path: /me}
        disclose:
          path: /users/{email}/data             # values are URL-encoded
          records_path: data.items              # where the records are in the JSON
          pagination: {type: cursor, cursor_path: meta.next_cursor, param: cursor}
          discovers: {customer_id: id}          # identifier: record field
        correct: {method: PATCH, path: /users/{email}, body: {set: "{changes}"}}
        suspend: {method: POST, path: /users/{email}/suspend, body: {reason: "{grounds}"}}
        erase: {method: DELETE, path: /users/{email}}
        third_party_records:
          path: /users/{email}/shares
          pagination: {type: link}              # RFC 8288 Link: <...>; rel="next"
        stop_third_party_provision: {method: POST, path: /users/{email}/shares/stop}

A read endpoint (``disclose``, ``third_party_records``) may set ``key``: record
fields that must equal the subject's identifiers, one ``{field, identifier}`` or a
list (a composite key). Records that do not match every part are dropped, for an
API that searches by part of the key (``GET /members?phone={phone}``)::

        disclose:
          path: /members
          query: {phone: "{phone}"}
          key:
            - {field: country_code, identifier: country_code}
            - {field: phone, identifier: phone}
        erase: {method: DELETE, path: "/members/{country_code}/{phone}"}

A change planned by such a read must send every part of its key, so the API
cannot apply it to a look-alike.

Templates: ``{name}`` in ``path``, ``query`` and ``body`` strings is replaced
by the subject's identifier ``name``. In a body, a string that is exactly
``"{changes}"`` becomes the ``{field: value}`` mapping of a correction, and
``"{grounds}"`` the list of grounds. The kinds offered are the operations
configured.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal, Self

import httpx
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

MiB = 1024 * 1024
SPECIAL = frozenset({"changes", "grounds"})
#: What an identifier name looks like; the same rule as ``streams.records.Subject``.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A dotted path into a JSON response (``data.items``, ``results.0``); "" is the whole body.
JSONPath = Annotated[str, StringConstraints(max_length=256, pattern=r"^[^.]+(\.[^.]+)*$|^$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")]
#: Each change, and the read that plans it (and whose ``key`` it must send in full).
CHANGES = {
    "correct": "disclose",
    "suspend": "disclose",
    "erase": "disclose",
    "stop_third_party_provision": "third_party_records",
}
Operation = Literal[
    "check",
    "disclose",
    "third_party_records",
    "correct",
    "suspend",
    "erase",
    "stop_third_party_provision",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CursorPages(_Model):
    """The response names the next page's cursor; send it back as a query parameter."""

    type: Literal["cursor"]
    cursor_path: JSONPath = Field(min_length=1)
    param: Name = "cursor"


class NumberedPages(_Model):
    """Ask for page 1, 2, 3 ... until a page has no records."""

    type: Literal["page"]
    param: Name = "page"
    start: int = Field(default=1, ge=0)
    size_param: Name | None = None
    size: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _size_pair(self) -> Self:
        if (self.size_param is None) != (self.size is None):
            raise ValueError("set both size_param and size, or neither")
        return self


class LinkPages(_Model):
    """Follow the ``Link: <url>; rel="next"`` header (RFC 8288), on the same origin only."""

    type: Literal["link"]


Pagination = Annotated[CursorPages | NumberedPages | LinkPages, Field(discriminator="type")]


class KeyPart(_Model):
    """A record field that must hold one of the subject's identifiers."""

    field: JSONPath = Field(min_length=1)
    identifier: Name


def _key_parts(value: Any) -> Any:
    """One ``{field, identifier}``, or a list of them (a composite key)."""
    return [value] if isinstance(value, dict | KeyPart) else value


class Endpoint(_Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: Annotated[str, StringConstraints(pattern=r"^/[^?#\s]*$", max_length=2048)]
    query: dict[Name, Annotated[str, StringConstraints(max_length=2048)]] = {}
    body: Any = Field(default=None, description="A JSON template, sent as the request body.")
    records_path: JSONPath | None = Field(
        default=None, description="Where the records are; default: the whole body."
    )
    pagination: Pagination | None = None
    changed_path: JSONPath | None = Field(
        default=None, description="Where a change's response gives the number of records changed."
    )
    kept_path: JSONPath | None = Field(
        default=None,
        description="Where an erasure's response gives the number of records kept with the "
        "fields that identify the subject removed or pseudonymised (0 when absent).",
    )
    anonymises: bool = Field(
        default=False,
        description="The erasure keeps every record it changes, with the fields that identify "
        "the subject removed or pseudonymised, where its reply does not count them (see "
        "``kept_path``): the principal is told they were kept, not erased.",
    )
    discovers: dict[Name, JSONPath] = Field(
        default={}, description="Other identifiers in the records, as identifier: field."
    )
    source: Name | None = Field(default=None, description="Records' _source; default: the path.")
    key: Annotated[list[KeyPart], BeforeValidator(_key_parts)] = Field(
        default=[],
        description="Record fields that must equal the subject's identifiers, every one of "
        "them (a composite key): records the API returns that do not match are dropped.",
    )

    @model_validator(mode="after")
    def _placeholders(self) -> Self:
        for where, text in [
            ("path", self.path),
            *(("query", v) for v in self.query.values()),
            *(("body", v) for v in _strings(self.body)),
        ]:
            for name in placeholders(text):
                if not IDENTIFIER.fullmatch(name):
                    raise ValueError(f"placeholder {{{name}}} is not an identifier name")
                if name in SPECIAL and (where != "body" or text != f"{{{name}}}"):
                    raise ValueError(f"{{{name}}} can only be a whole string value in the body")
        for name in self.discovers:
            if not IDENTIFIER.fullmatch(name):
                raise ValueError(f"discovers: {name!r} is not an identifier name")
        names = [p.identifier for p in self.key]
        if len(set(names)) != len(names) or not all(IDENTIFIER.fullmatch(n) for n in names):
            raise ValueError(f"key: each identifier once, as an identifier name: {names}")
        return self

    @property
    def sent(self) -> set[str]:
        """The identifiers this endpoint sends to the API."""
        texts = [self.path, *self.query.values(), *_strings(self.body)]
        return {n for t in texts for n in placeholders(t)} - SPECIAL

    @property
    def identifiers(self) -> set[str]:
        """The identifiers this endpoint needs: those it sends, and its key's parts."""
        return self.sent | {p.identifier for p in self.key}


class Endpoints(_Model):
    check: Endpoint | None = None
    disclose: Endpoint | None = None
    third_party_records: Endpoint | None = None
    correct: Endpoint | None = None
    suspend: Endpoint | None = None
    erase: Endpoint | None = None
    stop_third_party_provision: Endpoint | None = None

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        ops = [op for op, spec in self if spec is not None and op != "check"]
        if not ops:
            raise ValueError("configure at least one operation besides check")
        if self.check is not None and self.check.identifiers:
            raise ValueError("the check endpoint cannot use identifiers")
        for op, spec in self:
            if spec is not None and op != "check" and not spec.sent:
                raise ValueError(
                    f"{op}: the endpoint uses no identifier, so it would reach every subject"
                )
        for op, read in CHANGES.items():
            change, found_by = getattr(self, op), getattr(self, read)
            if change is None or found_by is None or not found_by.key:
                continue
            if change.key:
                raise ValueError(f"{op}: a change cannot filter records; set key on {read}")
            missing = sorted({p.identifier for p in found_by.key} - change.sent)
            if missing:
                raise ValueError(
                    f"{op}: {read} finds the subject by every part of its key, but {op} "
                    f"does not send {missing}, so it could change another person's records"
                )
        return self

    @model_validator(mode="after")
    def _kept_on_erase(self) -> Self:
        """What an erasure keeps is counted at ``kept_path`` or declared by ``anonymises``:
        one or the other, on the erase endpoint only."""
        for op, spec in self:
            if spec is not None and (spec.kept_path or spec.anonymises) and op != "erase":
                raise ValueError(f"{op}: kept_path and anonymises are for the erase endpoint")
        if self.erase is not None and self.erase.kept_path and self.erase.anonymises:
            raise ValueError("erase: set kept_path (the reply counts) or anonymises, not both")
        return self


class HTTPConfig(_Model):
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")]
    headers: dict[HeaderName, SecretStr] = Field(
        default={}, description="Sent with every request (auth); never shown or logged."
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Budget for one whole request: connect, headers, body.",
    )
    endpoints: Endpoints
    not_found_is_empty: bool = Field(
        default=True, description="A 404 means the subject is unknown: an empty result."
    )
    max_pages: int = Field(default=100, gt=0, le=100_000)
    max_response_bytes: int = Field(default=10 * MiB, gt=0, le=256 * MiB)
    max_retry_after_s: float = Field(
        default=600.0, gt=0, description="A longer Retry-After is capped to this."
    )

    @model_validator(mode="after")
    def _usable(self) -> Self:
        try:
            httpx.URL(self.base_url)
        except httpx.InvalidURL:
            raise ValueError("base_url is not a URL") from None
        for name, value in self.headers.items():
            text = value.get_secret_value()
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break or NUL in its value")
            if not text.isascii():
                raise ValueError(f"header {name!r} has a value that is not ASCII")
        return self


def placeholders(text: str) -> list[str]:
    """The placeholder names in a template string; a ``ValueError`` if it is malformed."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        names.append(name)
    return names


def _strings(value: Any) -> list[str]:
    """Every string in a JSON template (keys are sent as they are)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
