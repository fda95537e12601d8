"""What a benchmark run submits, and the data map of the systems it goes to."""

from __future__ import annotations

import json
from pathlib import Path

from services.demo.scenario import event
from services.demo.seed import seed
from services.settings import Settings

NOOP = "bench.noop:NoopConnector"
DIRECTORY = "bench.noop:DirectoryConnector"


def datamap(systems: int, connector: str) -> str:
    """``systems`` systems of one connector; each finds the subject by email.

    ``resolve``: no-op systems too, but only the first finds the subject by email; it
    discovers a customer id, which the others are keyed by, so every request first
    resolves its identity graph with one lookup (the cost of that phase)."""
    # Longer than the 10,000-request burst takes to drain: the benchmark measures the
    # pipeline's speed, not its time-out policy (a request still queued is not silent).
    lines = ["request_timeout_seconds: 3600", "systems:"]
    if connector == "resolve":
        lines += ["  sys00:", f'    connector: "{DIRECTORY}"', "    identifiers: [email]"]
        lines += ["    discovers: [customer_id]"]
        for i in range(1, systems):
            lines += [f"  sys{i:02d}:", f'    connector: "{NOOP}"']
            lines += ["    identifiers: [customer_id]"]
        return "\n".join(lines) + "\n"
    for i in range(systems):
        lines += [f"  sys{i:02d}:", f'    connector: "{connector}"', "    identifiers: [email]"]
        if connector == "sql":
            lines += [
                "    config:",
                '      url: "sqlite:///${DSR_HOME}/crm.db"',
                "      tables:",
                "        - name: customers",
                "          key: {column: email, identifier: email}",
            ]
    return "\n".join(lines) + "\n"


def prepare(home: Path, systems: int, connector: str) -> Settings:
    """Write the data map (and, for SQL, the sample databases) under ``home``; return
    the settings of a pipeline on embedded defaults there."""
    home.mkdir(parents=True, exist_ok=True)
    if connector == "sql":
        seed(home)
    path = home / "datamap.yaml"
    path.write_text(datamap(systems, NOOP if connector == "noop" else connector))
    return Settings(
        home=home,
        kafka_bootstrap=None,
        datamap_override=str(path),
        database_url_override=None,
        storage_url_override=None,
    )


def requests(run: str, n: int) -> list[bytes]:
    """``n`` disclosure requests, one subject each (the demo's seeded ones for SQL)."""
    emails = ["taro@example.jp", "hanako@example.jp", "jiro@example.jp"]
    return [
        json.dumps(event(f"{run}-{i:05d}", "disclosure", {"email": emails[i % 3]})).encode()
        for i in range(n)
    ]
