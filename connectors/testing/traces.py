"""The kit's trace check: after an erasure, the system's raw storage names the subject nowhere.

Disclosure only shows what the connector looks up; an index, a cache key or a
copy it forgets to erase stays behind unseen. ``Harness.raw_view()`` shows what
the system stores (keys and values, rows, object bodies), and the kit searches it
for each of the subject's identifiers in the forms systems keep them in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from connectors.testing.calls import attempt, fail, run
from connectors.testing.harness import Harness
from connectors.testing.session import Session
from streams.records import Kind

#: Shorter forms are too common to mean anything ("1", "jp").
MIN_FORM = 4
#: A value with this many digits, and only phone punctuation besides, is also searched
#: for as its digits alone ("+81-3-0000-0001" as "81300000001").
MIN_PHONE_DIGITS = 7
_PHONE = re.compile(r"[\d\s()+.\-]+")


def forms(value: str) -> dict[str, str]:
    """The forms of ``value`` to look for, each with what it is. Matching ignores case,
    so the lower- and upper-case forms are found with the form as given."""
    plain = value.strip()
    candidates = [
        (value, "as given"),
        (plain, "stripped"),
        (quote(plain, safe=""), "URL-encoded"),
        (quote_plus(plain, safe=""), "URL-encoded"),
        (json.dumps(plain)[1:-1], "JSON-escaped"),
    ]
    digits = re.sub(r"\D", "", value)
    if _PHONE.fullmatch(plain) and len(digits) >= MIN_PHONE_DIGITS:
        candidates.append((digits, "digits only"))
    found: dict[str, str] = {}
    for form, how in candidates:
        if len(form) >= MIN_FORM:
            found.setdefault(form, how)  # the plainest name for a form that is several
    return found


def texts(view: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """Every string in ``view``, with where it is: item numbers, keys and fields."""
    for i, item in enumerate(view):
        yield from _texts(item, f"item {i}")


def _texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, bytes | bytearray | memoryview):
        yield where, bytes(value).decode("utf-8", "replace")
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _texts(key, f"{where}, key")
            yield from _texts(inner, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for j, inner in enumerate(value):
            yield from _texts(inner, f"{where}[{j}]")
    elif value is not None:
        yield where, str(value)


def traces(view: Iterable[Any], identifiers: Mapping[str, str]) -> list[str]:
    """Where ``view`` holds one of ``identifiers`` in any of its forms, one line each."""
    wanted = {name: forms(value) for name, value in identifiers.items() if value}
    found = []
    for where, text in texts(view):
        lowered = text.lower()
        for name, variants in wanted.items():
            hit = next((f for f in variants if f.lower() in lowered), None)
            if hit is not None:
                found.append(f"{name} {hit!r} ({variants[hit]}) in {where}: {text[:200]!r}")
    return found


class TraceTests:
    def test_erasure_leaves_no_trace_in_raw_storage(self, kit: Session) -> None:
        kit.require(Kind.ERASURE)
        h, s = kit.harness, kit.seeded
        if type(h).raw_view is Harness.raw_view:
            pytest.skip(
                "the harness has no raw_view(): implement it to return what the system "
                "stores (keys and values, rows, object bodies), so the kit can check that "
                "erase() leaves none of the subject's identifiers behind"
            )
        before = traces(_view(kit), s.subject)
        if not before:
            fail(
                "before erase(), raw_view() shows none of the subject's identifiers; it "
                "must return what the system stores, including the subject's data"
            )

        run(kit.connector, Kind.ERASURE, s.subject)

        left = traces(_view(kit), s.subject)
        if left:
            fail(
                "after erase(), the system still stores the subject's identifiers:\n"
                + "\n".join(f"  - {line}" for line in left[:20])
            )


def _view(kit: Session) -> list[Any]:
    return list(attempt("Harness.raw_view()", kit.harness.raw_view))
