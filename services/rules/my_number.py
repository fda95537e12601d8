"""My Number (個人番号) is never collected as proof of identity, nor anywhere else in a
request: the pipeline may not hold it for that purpose (My Number Act Art. 20).

A My Number is 12 digits whose last is a check digit (Ordinance on the individual number,
Art. 5): with ``P(n)`` the n-th digit from the right of the first eleven and ``Q(n)``
``n + 1`` for n <= 6, ``n - 5`` after, the check digit is ``11 - sum(P(n) * Q(n)) % 11``,
or 0 when that remainder is 0 or 1. Written with spaces or hyphens in groups of four, it
is the same number. A value that starts with ``+`` is a telephone number (E.164).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_CANDIDATE = re.compile(r"(?<![\d+])(\d{4})[ \-]?(\d{4})[ \-]?(\d{4})(?!\d)")


def is_my_number(digits: str) -> bool:
    """Whether ``digits`` (12 of them) carry a valid My Number check digit."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    body = digits[:11]
    total = sum(int(body[11 - n]) * (n + 1 if n <= 6 else n - 5) for n in range(1, 12))
    remainder = total % 11
    return int(digits[11]) == (0 if remainder <= 1 else 11 - remainder)


def contains_my_number(text: str) -> bool:
    if text.lstrip().startswith("+"):
        return False
    return any(is_my_number("".join(m.groups())) for m in _CANDIDATE.finditer(text))


def found_in(obj: Any, path: str = "") -> list[str]:
    """The paths (``verification.reference``, ``subject.identifiers.id``) of every string
    in ``obj`` that holds a My Number; never the values."""
    return [where for where, text in _strings(obj, path) if contains_my_number(text)]


def _strings(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _strings(value, f"{path}[{i}]")
