"""How ``dsr responses`` prints a response: ``services.cli.views``."""

from __future__ import annotations

from services.cli.app import console
from services.cli.views import _print_response


def test_a_response_line_gives_each_systems_counts_only_where_there_are_some() -> None:
    body = {
        "request_id": "r-1",
        "kind": "erasure",
        "regulation": "appi",
        "status": "completed",
        "systems": [
            {"system": "crm", "outcome": "done", "changed": 2},
            {"system": "orders", "outcome": "done", "changed": 1, "kept": 1},
            {"system": "profiles", "outcome": "done", "changed": 1, "pending_purge": 1},
            {"system": "partners", "outcome": "not_applicable", "changed": 0},
        ],
    }
    with console.capture() as printed:
        _print_response(body)
    lines = {line.split(":")[0].strip(): line for line in printed.get().splitlines()}
    assert lines["crm"].endswith("crm: done changed=2")
    assert lines["orders"].endswith("orders: done changed=1 kept=1")
    assert lines["profiles"].endswith("profiles: done changed=1 pending_purge=1")
    assert lines["partners"].endswith("partners: not_applicable")
