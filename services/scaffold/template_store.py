"""The generated ``example_store.py``: the in-memory system the example connector starts with."""

TEMPLATE = '''\
"""The in-memory example system. Delete this file once the connector calls {{name}}."""

from __future__ import annotations

from typing import Any


class Store:
    """The in-memory example system: customers and provision records, by email."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.provisions: dict[str, list[dict[str, Any]]] = {}
        self.reachable = True

    def add_customer(
        self,
        email: str,
        name: str,
        address: str,
        invoices: list[dict[str, Any]],
        provisions: list[dict[str, Any]],
    ) -> None:
        self.customers[email] = {
            "profile": {"email": email, "name": name, "address": address},
            "invoices": invoices,
            "suspended": False,
        }
        self.provisions[email] = [{**p, "stopped": False} for p in provisions]


#: Example stores by name, so a test and the connector it builds share one.
STORES: dict[str, Store] = {}
'''
