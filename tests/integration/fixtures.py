"""A whole pipeline on the embedded broker, in a temporary home, for integration tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from services.client import Watcher
from services.delivery.encrypted import open_package_storage
from services.delivery.package import read_package
from services.demo.scenario import event
from services.demo.seed import seed
from services.ledger import Ledger
from services.processes import read_processes
from services.settings import Settings
from services.stack import Stack
from services.supervisor import Supervisor
from streams import topics

DEMO_DATAMAP = Path(__file__).parents[2] / "services" / "demo" / "datamap.yaml"


#: The demo's CRM as a data-map entry: the healthy system most tests set beside the one
#: they are about.
CRM = """
  crm:
    connector: sql
    identifiers: [email]
    config:
      url: "sqlite:///${DSR_HOME}/crm.db"
      tables:
        - name: customers
          key: {column: email, identifier: email}
"""


#: An archive keyed by phone whose database cannot be opened: every call fails
#: transiently, so with ``DSR_TASK_ATTEMPTS`` high its task is still being retried when
#: its request times out.
SILENT_ARCHIVE = """
  archive:
    connector: sql
    identifiers: [phone]
    config:
      url: "sqlite:///file:${DSR_HOME}/archive.db?mode=ro&uri=true"
      tables:
        - name: customers
          key: {column: phone, identifier: phone}
"""


def with_crm(systems: str, timeout_s: int = 60) -> str:
    """A data map of the CRM and ``systems`` (YAML entries indented under ``systems:``)."""
    return f"request_timeout_seconds: {timeout_s}\nsystems:{CRM}{systems}"


def settings_for(
    home: Path, datamap_text: str | None = None, database_url: str | None = None
) -> Settings:
    seed(home)
    datamap = home / "datamap.yaml"
    if datamap_text is None:
        shutil.copyfile(DEMO_DATAMAP, datamap)
    else:
        datamap.write_text(datamap_text)
    return Settings(
        home=home,
        kafka_bootstrap=None,
        datamap_override=str(datamap),
        database_url_override=database_url,
        storage_url_override=None,
    )


@contextmanager
def joined_stack(settings: Settings, **options: Any) -> Iterator[Stack]:
    """The stack on ``settings`` (``Stack``'s ``options``), once every process has joined."""
    with Stack(settings, **options) as stack:
        stack.wait_joined()
        yield stack


@contextmanager
def json_api(body: dict[str, Any], before: Callable[[str], None]) -> Iterator[str]:
    """A system's HTTP API on loopback that answers every GET with ``body``, after
    ``before(path)`` (a delay, a gate); its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            before(self.path)
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


#: Where tests leave what a person looks at afterwards: screenshots, page images.
ARTIFACTS = Path(os.environ.get("DSR_TEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")


def chromium() -> str | None:
    """Debian's chromium, which ``make test`` installs; None where it is missing."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


# -- `dsr up` as a subprocess, killed from outside -------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any DSR_ variable, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DSR_")} | extra


def dsr_cli(
    env: dict[str, str], cwd: Path | None = None
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``dsr(*args, stdin=None)``: the CLI in a subprocess with ``env``, its output kept."""

    def dsr(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=env,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return dsr


def answered(seen: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """The requests a ``Watcher.collect``'s responses answer."""
    return {body["request_id"] for _, body in seen}


def wait_for(
    what: str,
    ready: Callable[[], Any],
    timeout: float = 120,
    *,
    alive: subprocess.Popen[Any] | None = None,
) -> Any:
    """Poll ``ready`` until it returns something true; fail after ``timeout`` seconds,
    or as soon as the process ``alive`` (one that should bring it about) has exited."""
    deadline = time.monotonic() + timeout
    while not (value := ready()):
        assert alive is None or alive.poll() is None, f"the process exited waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def wait_supervised(
    what: str, stack: Stack, ready: Callable[[], Any], timeout: float = 120
) -> Supervisor:
    """``wait_for`` ``ready`` while the product's supervisor tends ``stack``, as under
    ``dsr up``: whatever dies comes back by its rules (its backoff shortened to 0.1 s).
    The supervisor, for its health records."""
    supervisor = Supervisor(stack, backoff_s=0.1)

    def tended() -> Any:
        supervisor.tick()
        return ready()

    wait_for(what, tended, timeout)
    return supervisor


def answer(stack: Stack, request: dict[str, Any], timeout_s: float = 90) -> dict[str, Any]:
    """Submit one request event to ``stack``: its response, as a client consumer sees it."""
    watcher = Watcher(stack.bootstrap, [topics.RESPONSES])
    submitter = stack.submitter()
    try:
        submitter.submit_all([json.dumps(request).encode()])
        [(_, response)] = watcher.collect(lambda seen: len(seen) >= 1, timeout_s=timeout_s)
    finally:
        submitter.close()
        watcher.close()
    return dict(response)


def notice_text(home: Path, request_id: str) -> str:
    """The plain text of the request's response notice in the outbox, once it is written."""
    outbox = home / "outbox" / request_id
    [notice] = wait_for("the response notice", lambda: list(outbox.glob("*response*.eml")))
    message = message_from_bytes(notice.read_bytes(), policy=default_policy)
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def told(ledger: Ledger, request_id: str) -> list[str]:
    """The purposes of the notices audited as sent to the request's principal, in order."""
    return [e.detail["purpose"] for e in ledger.timeline(request_id) if e.action == "notified"]


def wait_sent(ledger: Ledger, request_ids: Iterable[str], timeout: float = 180) -> None:
    """Wait until the ledger records every one of these requests' responses as sent. A
    worker killed while sending one holds its lease until it runs out
    (``services.ledger.base.SEND_LEASE``); only then does the sweeper send it again."""
    ids = list(request_ids)

    def sent() -> bool:
        return all((r := ledger.response(i)) is not None and r.published_at for i in ids)

    wait_for(f"{len(ids)} responses to be sent", sent, timeout=timeout)


@contextmanager
def dsr_up_process(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``dsr up [args]`` on the data map and systems already under ``home``, with ``env``
    added to a clean environment; killed at the end."""
    environ = clean_env(DSR_HOME=str(home), DSR_DASHBOARD_PORT="0", **(env or {}))
    log = (home / "dsr-up.log").open("ab")
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", *args],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield up
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        log.close()


def processes(home: Path) -> dict[str, Any]:
    """What ``dsr up``'s supervisor last reported of each process."""
    body = read_processes(home)
    return body["processes"] if body else {}


def running(home: Path, name: str, not_pid: int | None = None) -> int | None:
    """The pid of ``name`` once it runs (and, for a worker or runner, has joined)."""
    p = processes(home).get(name)
    if not p or not p["running"] or p["pid"] in (None, not_pid):
        return None
    if name != "broker" and not (home / "run" / f"{name}.ready").exists():
        return None
    pid: int = p["pid"]
    return pid


# -- principals with look-alikes, and what is left of them ------------------------


def principal(i: int) -> dict[str, str]:
    return {"email": f"p{i}@example.jp"}


def request_for(i: int, prefix: str) -> bytes:
    """Principal ``i``'s request ``<prefix>-<i>``: an erasure for even ``i``, a disclosure
    for odd."""
    rid = f"{prefix}-{i}"
    if i % 2 == 0:
        body = event(rid, "erasure", principal(i), grounds=["no_longer_needed"])
    else:
        delivery = {"method": "electronic", "address": principal(i)["email"]}
        body = event(rid, "disclosure", principal(i), delivery=delivery)
    return json.dumps(body).encode()


def assert_package_holds_only(
    settings: Settings, request_id: str, i: int, people: Iterable[int]
) -> None:
    """The disclosure package of principal ``i`` holds their records, not their
    look-alike's, nor any other principal's."""
    text = json.dumps(
        json.loads(read_package(open_package_storage(settings), request_id)["data.json"]),
        ensure_ascii=False,
    )
    assert principal(i)["email"] in text and f"C-p{i}" in text, request_id
    assert f"p{i}@example.com" not in text and f"C-l{i}" not in text, request_id
    others = [f'C-p{j}"' for j in people if j != i]
    assert not [o for o in others if o in text], request_id


def seed_lookalikes(home: Path, n: int) -> None:
    """``n`` principals and ``n`` look-alikes (same name, phone and address under another
    email and customer id), each with two orders, each order shipped."""
    crm, orders, shipping, search = (
        sqlite3.connect(home / f"{db}.db") for db in ("crm", "orders", "shipping", "search")
    )
    for i in range(n):
        for who, email in (("p", f"p{i}@example.jp"), ("l", f"p{i}@example.com")):
            cid = f"C-{who}{i}"
            name, phone, address = f"山田 {i}", f"090-0000-{i:04d}", f"東京都{i}"
            crm.execute(
                "INSERT INTO customers (customer_id, name, email, phone, address) "
                "VALUES (?,?,?,?,?)",
                (cid, name, email, phone, address),
            )
            search.execute("INSERT INTO profile_index VALUES (?,?)", (email, name))
            for k in (1, 2):
                oid = f"O-{who}{i}-{k}"
                orders.execute(
                    "INSERT INTO orders VALUES (?,?,?,?,?,0)", (oid, cid, "tea", 1000, address)
                )
                shipping.execute(
                    "INSERT INTO shipments VALUES (?,?,?,?,?,0)",
                    (oid, "Yamato", f"YT-{who}{i}{k}", name, address),
                )
    for db in (crm, orders, shipping, search):
        db.commit()
        db.close()


def rows(home: Path, db: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / f"{db}.db") as conn:
        return conn.execute(sql, args).fetchall()


def assert_erased(home: Path, i: int) -> None:
    """Principal ``i``'s data is gone from every system; the look-alike's is all there."""
    email, cid, address = f"p{i}@example.jp", f"C-p{i}", f"東京都{i}"
    assert rows(home, "crm", "SELECT 1 FROM customers WHERE email = ?", email) == []
    assert rows(home, "crm", "SELECT 1 FROM customers WHERE customer_id = ?", cid) == []
    assert rows(home, "search", "SELECT 1 FROM profile_index WHERE email = ?", email) == []
    kept = rows(
        home,
        "orders",
        "SELECT customer_id, shipping_address FROM orders WHERE order_id LIKE ?",
        f"O-p{i}-%",
    )
    assert len(kept) == 2, f"p{i}: orders are kept for accounting, anonymised"
    for customer_id, shipping_address in kept:
        assert customer_id != cid, f"p{i}: an order still names the customer"
        assert shipping_address != address, f"p{i}: an order still holds the address"
    for name, addr in rows(
        home,
        "shipping",
        "SELECT recipient_name, delivery_address FROM shipments WHERE order_id LIKE ?",
        f"O-p{i}-%",
    ):
        assert name != f"山田 {i}", f"p{i}: a shipment still names them"
        assert addr != address, f"p{i}: a shipment still holds the address"
    assert_untouched(home, i, "l")


def assert_untouched(home: Path, i: int, who: str) -> None:
    """The principal (``who="p"``) or look-alike (``"l"``) ``i`` still has all their data."""
    email = f"p{i}@example.jp" if who == "p" else f"p{i}@example.com"
    cid, address = f"C-{who}{i}", f"東京都{i}"
    assert rows(home, "crm", "SELECT customer_id FROM customers WHERE email = ?", email) == [(cid,)]
    assert len(rows(home, "search", "SELECT 1 FROM profile_index WHERE email = ?", email)) == 1
    assert (
        rows(
            home,
            "orders",
            "SELECT customer_id, shipping_address FROM orders WHERE order_id LIKE ?",
            f"O-{who}{i}-%",
        )
        == [(cid, address)] * 2
    )
    assert (
        rows(
            home,
            "shipping",
            "SELECT recipient_name, delivery_address FROM shipments WHERE order_id LIKE ?",
            f"O-{who}{i}-%",
        )
        == [(f"山田 {i}", address)] * 2
    )
