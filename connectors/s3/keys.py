"""Key patterns: where a subject's objects are, and why no lookup reaches another's.

A pattern is an S3 key with placeholders that name subject identifiers::

    users/{customer_id}/               a folder: every object whose key starts with it
    exports/{email}/profile.json       one object: exactly this key

The rules that keep subjects apart:

- a pattern has at least one placeholder, so it never names a shared folder;
- a key segment (the text between ``/``) holds at most one placeholder, and a
  folder pattern ends with ``/``, so a placeholder always fills out to a whole
  segment: ``users/1/`` can never match ``users/12/...``;
- an identifier value that would change the key's shape (a ``/``, ``..`` or a
  control character) is refused with a ``FatalError``, never substituted.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.errors import FatalError

#: What an identifier name looks like; the same rule as ``streams.records.Subject``.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class KeyPattern:
    """A parsed pattern: literal text and placeholders, in order."""

    text: str
    parts: tuple[tuple[str, str | None], ...]

    @property
    def is_folder(self) -> bool:
        return self.text.endswith("/")

    @property
    def identifiers(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.parts if name is not None)

    def resolve(self, identifiers: Mapping[str, str]) -> str | None:
        """The key (or key prefix) for this subject, or None when an identifier is missing."""
        if not all(identifiers.get(name) for name in self.identifiers):
            return None
        return "".join(
            literal + (safe_value(name, identifiers[name]) if name else "")
            for literal, name in self.parts
        )

    def __str__(self) -> str:
        return self.text


def parse_pattern(text: str) -> KeyPattern:
    """Parse and check a pattern; a ``ValueError`` says what is wrong with it."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(
            f"pattern {text!r}: {exc} (write a literal brace as {{{{ or }}}})"
        ) from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in pieces:
        if name is not None and not IDENTIFIER.fullmatch(name):
            raise ValueError(
                f"pattern {text!r}: placeholder {{{name}}} is not an identifier name "
                "(lowercase letters, digits and _, starting with a letter)"
            )
        if spec or conversion:
            raise ValueError(f"pattern {text!r}: placeholders take no format spec or conversion")
        parts.append((literal, name))
    pattern = KeyPattern(text, tuple(parts))
    _check_shape(pattern)
    return pattern


def _check_shape(pattern: KeyPattern) -> None:
    text = pattern.text
    if not pattern.identifiers:
        raise ValueError(
            f"pattern {text!r} has no placeholder, so it would match every subject's objects"
        )
    if text.startswith("/") or "//" in text:
        raise ValueError(f"pattern {text!r}: no leading '/' and no empty segments")
    if len(text.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"pattern {text!r} is longer than an S3 key can be")
    skeleton = "".join(literal + ("\0" if name else "") for literal, name in pattern.parts)
    for segment in skeleton.split("/"):
        if segment.count("\0") > 1:
            raise ValueError(
                f"pattern {text!r}: a key segment may hold only one placeholder, "
                "or two subjects could share a key"
            )
        if segment in (".", "..") or _unsafe(segment.replace("\0", "")):
            raise ValueError(f"pattern {text!r}: no '.', '..', '\\' or control characters")


def safe_value(name: str, value: str) -> str:
    """``value`` if it can stand in a key segment; a ``FatalError`` (without the value) if not."""
    if value in (".", "..") or "/" in value or ".." in value or _unsafe(value):
        raise FatalError(
            f"identifier {name!r} holds '/', '..', '\\' or a control character, "
            "so it cannot be put in an S3 key; refusing rather than reaching other keys"
        )
    return value


def _unsafe(text: str) -> bool:
    return "\\" in text or any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text)
