"""The generated ``tests/test_conformance.py``: a harness that seeds the example store."""

TEMPLATE = '''\
"""The {{name}} connector against dsr-pipeline's conformance kit: run ``pytest``.

The harness seeds two people in a test instance of {{name}}; the kit then
checks every operation the connector declares, with readable failures.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from connectors.testing import Harness, Seeded, conformance_tests
from streams.records import Change

from {{package}}.connector import {{Class}}Connector
from {{package}}.example_store import STORES, Store

TOKEN = "example-token-never-shown"  # noqa: S105 - a test value the kit checks stays hidden


class {{Class}}Harness(Harness):
    """A seeded test instance of {{name}}. Never point it at production data."""

    connector_class = {{Class}}Connector
    system = "{{name}}"

    def seed(self) -> Seeded:
        # TODO: create these two people in your test instance instead of the example store.
        self.store = f"test-{uuid.uuid4().hex}"
        store = STORES[self.store] = Store()
        self.request.addfinalizer(lambda: STORES.pop(self.store, None))
        store.add_customer(
            "alice@example.com",
            "Alice Example",
            "1 Alice Street",
            invoices=[
                {"number": "INV-1001", "amount_jpy": 12000},
                {"number": "INV-1002", "amount_jpy": 3400},
            ],
            provisions=[
                {"recipient": "Acme Payments", "purpose": "card payment", "at": "2024-04-01"}
            ],
        )
        store.add_customer(
            "bob@example.com",
            "Bob Other",
            "2 Bob Road",
            invoices=[{"number": "INV-2001", "amount_jpy": 5600}],
            provisions=[
                {"recipient": "Acme Payments", "purpose": "card payment", "at": "2024-04-02"}
            ],
        )
        return Seeded(
            subject={"email": "alice@example.com"},
            other={"email": "bob@example.com"},
            correction=Change(field="name", value="Alice Corrected"),
        )

    def config(self) -> Mapping[str, Any]:
        # TODO: a config that reaches your test instance.
        return {"store": self.store, "api_token": TOKEN}

    def invalid_configs(self) -> list[Mapping[str, Any]]:
        # TODO: configs the connector must refuse.
        return [
            {"store": "test"},
            {"store": "test", "api_token": TOKEN, "timeout_s": 0},
            {"store": "test", "api_token": TOKEN, "colour": "blue"},
        ]

    def secrets(self) -> list[str]:
        return [TOKEN]

    def raw_view(self) -> list[Mapping[str, Any]]:
        # TODO: everything your test instance stores (rows, keys and values), read
        # around the connector, but what the law keeps (provision records).
        return [STORES[self.store].customers]

    @contextlib.contextmanager
    def break_transiently(self) -> Iterator[None]:
        # TODO: make your test instance fail transiently (stop its server, lock its database).
        STORES[self.store].reachable = False
        try:
            yield
        finally:
            STORES[self.store].reachable = True


Test{{Class}}Conformance = conformance_tests({{Class}}Harness)
'''
