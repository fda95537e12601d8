"""What a connector's author writes to run the kit: a ``Harness`` that seeds a live system."""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.base import ConnectorBase
from connectors.testing.calls import run
from streams.records import Change, Kind

#: Record fields and sources whose names mark suspended data (``processing_suspended``,
#: ``orders_suppressed``, ``restricted``), for the default ``Harness.is_suspended``.
SUSPENDED = re.compile(r"suspend|suppress|restrict", re.IGNORECASE)


@dataclass(frozen=True)
class Seeded:
    """The people ``Harness.seed()`` created.

    ``subject`` has data in the system; ``other`` has data too and must never
    leak into the subject's results. Give ``other`` values of their own (another
    name, address, order number): the kit reports any field in which the
    subject's results hold one of ``other``'s values. ``correction`` is a change
    the connector can apply to the subject (its field must exist and the value
    must be new). ``unknown`` identifies nobody; by default the kit makes one up.
    """

    subject: dict[str, str]
    other: dict[str, str]
    correction: Change | None = None
    unknown: dict[str, str] | None = None

    def unknown_identifiers(self) -> dict[str, str]:
        """``unknown``, or the subject's identifier names with values nobody has."""
        if self.unknown is not None:
            return dict(self.unknown)
        tag = uuid.uuid4().hex[:10]
        return {k: _made_up(v, tag) for k, v in self.subject.items()}


def _made_up(value: str, tag: str) -> str:
    if "@" in value:
        return f"nobody.{tag}@example.invalid"
    if value.isdigit():
        return str(int("9" * 12) - int(tag[:6], 16))
    return f"nobody-{tag}"


class Harness(ABC):
    """Connects the kit to a live test instance of your system.

    Set ``connector_class`` (a ``Connector`` or an ``AsyncConnector``) and
    ``system`` (the name used in messages), and implement ``config()`` and
    ``seed()``. ``request`` and ``tmp_path`` are pytest's: call
    ``request.getfixturevalue(...)`` for your own fixtures and
    ``request.addfinalizer(...)`` to clean up.
    """

    connector_class: ClassVar[type[ConnectorBase[Any]]]
    system: ClassVar[str] = "under_test"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path

    @abstractmethod
    def config(self) -> Mapping[str, Any]:
        """A valid config that reaches the live test system (called after ``seed()``)."""

    @abstractmethod
    def seed(self) -> Seeded:
        """Create the subject and the other person, each with data.

        Include provision records if the connector lists third-party records.
        """

    def invalid_configs(self) -> Sequence[Mapping[str, Any]]:
        """Configs the connector must refuse with a ``ConfigError``."""
        return []

    def secrets(self) -> list[str]:
        """Values (passwords, tokens) that must never be shown, logged or returned."""
        return []

    def break_transiently(self) -> AbstractContextManager[None]:
        """While active, calls to the system fail transiently (it times out, is locked, is down)."""
        raise NotImplementedError(
            "return a context manager during which calls to the system fail transiently "
            "(stop the test server, lock the database, drop the connection), so the kit can "
            "check that the connector raises RetriableError"
        )

    def raw_view(self) -> Iterable[str | bytes | Mapping[str, Any]]:
        """Optional: what the system stores, read around the connector (every key and
        value, every row of the tables erasure reaches, every object's body).

        After ``erase()`` the kit searches it for the subject's identifiers in their
        common forms (any case, stripped, URL-encoded, JSON-escaped, a phone number's
        digits alone) and fails naming each one it finds, and where. Leave out what the
        system must keep by law (provision records), which erasure does not touch.
        """
        raise NotImplementedError

    def is_suspended(self, connector: Any, subject: dict[str, str]) -> bool:
        """Whether the system shows ``subject`` as suspended.

        By default: ``connector.disclose(subject)`` returns a record with a true
        field, or a ``_source``, whose name says suspended, suppressed or
        restricted (``processing_suspended: true``, rows in ``orders_suppressed``).
        Override it if your system shows suspension some other way (``connector``
        is typed ``Any`` so that an override can name your connector class).
        """
        return any(_marks_suspension(r) for r in run(connector, Kind.DISCLOSURE, subject).records)


def _marks_suspension(record: Mapping[str, Any]) -> bool:
    if SUSPENDED.search(str(record.get("_source", ""))):
        return True
    return any(
        SUSPENDED.search(key) and value in (True, 1, "true", "True", "1", "yes")
        for key, value in record.items()
    )
