"""`dsr up` on a PostgreSQL ledger whose URL holds a password: the password appears in
none of its output, nor in any log or file its processes write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.integration.fixtures import settings_for, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "s3cret"
SERVER = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:5432"


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own on the local PostgreSQL server (trust auth: the password is
    sent and ignored), dropped afterwards."""
    name = f"dsr_mask_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432: {exc}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_dsr_up_never_shows_the_database_password(tmp_path: Path, database: str) -> None:
    settings_for(tmp_path)  # the demo's systems and data map under tmp_path
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSR_")}
    env.update(DSR_HOME=str(tmp_path), DSR_DASHBOARD_PORT="0", DSR_DATABASE_URL=database)
    out = tmp_path / "dsr-up.log"
    with out.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for("dsr up to join", lambda: b"Joined in" in out.read_bytes(), 180, alive=up)
            up.send_signal(signal.SIGINT)
            up.wait(timeout=120)
        finally:
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
    printed = out.read_text()
    assert "postgres:***@127.0.0.1" in printed  # the URL is shown, masked
    assert '"logger": "dsr.runner"' in printed  # the processes' logs are in it too
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert (tmp_path / "run" / "processes.json") in written
    leaks = [str(p) for p in written if PASSWORD.encode() in p.read_bytes()]
    assert leaks == []
