"""A key-value store on SQLite, as a Redis-backed app keeps sessions, and its connector.

The store holds ``session:<id>`` (the person's JSON) and ``index-by-email:<email>``
(the session id). ``LeakyKVConnector`` erases the session but forgets the index:
disclosure, which goes through the index to the session, then shows nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from connectors import CheckResult, Connector, OperationResult, RetriableError
from connectors.base import Identifiers
from connectors.testing import Harness, Seeded
from connectors.testing.session import Session
from streams.records import Kind
from tests.fixtures.databases import sqlite_locked

PEOPLE = {
    "s-1": {"email": "Alice.Kv@example.com", "name": "Alice Kv", "phone": "+81-3-0000-0001"},
    "s-2": {"email": "bob.kv@example.com", "name": "Bob Other", "phone": "+81-3-9999-0002"},
}


class KVConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str


class KVConnector(Connector[KVConfig]):
    """Finds a session through the email index; erasure deletes both keys."""

    name = "kv"
    Config = KVConfig
    capabilities = frozenset({Kind.DISCLOSURE, Kind.ERASURE})
    #: The keys erasure deletes: the session, and (unless leaky) the index entry.
    erases_index: ClassVar[bool] = True

    def check(self) -> CheckResult:
        with self._db() as db:
            db.execute("SELECT count(*) FROM kv").fetchone()
        return CheckResult(True, "the store answers")

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        with self._db() as db:
            session = self._session(db, identifiers)
            row = db.execute("SELECT value FROM kv WHERE key = ?", (f"session:{session}",))
            found = row.fetchone()
        records = [{**json.loads(found[0]), "_source": "session"}] if found else []
        return OperationResult(records=records, fields=sorted({k for r in records for k in r}))

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        with self._db() as db:
            session = self._session(db, identifiers)
            if session is None:
                return OperationResult(dry_run=dry_run)
            keys = [f"session:{session}"]
            if self.erases_index:
                keys.append(_index(identifiers["email"]))
            held = db.execute(
                f"SELECT key, value FROM kv WHERE key IN ({','.join('?' * len(keys))})", keys
            ).fetchall()
            fields = sorted({f for k, v in held if k.startswith("session:") for f in json.loads(v)})
            if not dry_run:
                db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k, _ in held])
        return OperationResult(changed=len(held), fields=fields, dry_run=dry_run)

    def _session(self, db: sqlite3.Connection, identifiers: Identifiers) -> str | None:
        email = identifiers.get("email")
        if not email:
            return None
        row = db.execute("SELECT value FROM kv WHERE key = ?", (_index(email),)).fetchone()
        return str(row[0]) if row else None

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.config.path, timeout=0.05)
        try:
            with db:
                yield db
        except sqlite3.OperationalError as exc:
            raise RetriableError(f"system {self.system!r}: the store is busy") from exc
        finally:
            db.close()


class LeakyKVConnector(KVConnector):
    """Erases the session, keeps ``index-by-email:<email>``."""

    erases_index = False


class OneConnectionKVConnector(KVConnector):
    """Opens one connection when built and keeps it: fine one call at a time, from the
    thread that built it, and nowhere else (sqlite3 refuses another thread's use)."""

    def __init__(self, system: str, config: Any) -> None:
        super().__init__(system, config)
        self._conn = sqlite3.connect(self.config.path)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._conn:
            yield self._conn

    def close(self) -> None:
        self._conn.close()


def _index(email: str) -> str:
    return f"index-by-email:{email.strip().lower()}"


class KVHarness(Harness):
    connector_class = KVConnector
    system = "sessions"

    def seed(self) -> Seeded:
        self.path = self.tmp_path / "kv.db"
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for sid, person in PEOPLE.items():
                db.execute("INSERT INTO kv VALUES (?, ?)", (f"session:{sid}", json.dumps(person)))
                db.execute("INSERT INTO kv VALUES (?, ?)", (_index(person["email"]), sid))
        return Seeded(
            subject={"email": PEOPLE["s-1"]["email"]}, other={"email": PEOPLE["s-2"]["email"]}
        )

    def config(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def raw_view(self) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return [{k: v} for k, v in db.execute("SELECT key, value FROM kv ORDER BY key")]

    def break_transiently(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_locked(f"sqlite:///{self.path}")


class LeakyKVHarness(KVHarness):
    connector_class = LeakyKVConnector


class OneConnectionKVHarness(KVHarness):
    connector_class = OneConnectionKVConnector


@contextlib.contextmanager
def kit_of(
    harness: type[Harness], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Session]:
    """One test's kit session on ``harness``, closed afterwards."""
    kit = Session(harness(request, tmp_path))
    try:
        yield kit
    finally:
        kit.close()
