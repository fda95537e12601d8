"""The engine, and how database errors become connector errors."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc

from connectors.errors import ConfigError, ConnectorError, FatalError, RetriableError
from connectors.sql.config import SQLConfig

#: A database host that vanished (it died, or the network to it was cut) answers
#: nothing, not even a reset: without these a call waits for TCP to give up, a quarter
#: of an hour. With them, a new connection is given 3 s; one is probed after 3 s of
#: silence (a probe a second, three of them) and dropped when 5 s pass with what was
#: sent (a statement, a probe) unacknowledged. A statement that runs long on a live
#: server is not cut: the server's end still answers probes.
CONNECT_TIMEOUT_S = 3
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 3, 1, 3
USER_TIMEOUT_MS = 5000

#: libpq's options for a PostgreSQL connection, where its URL does not set them.
POSTGRES_OPTIONS: dict[str, int] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": KEEPALIVE_IDLE_S,
    "keepalives_interval": KEEPALIVE_INTERVAL_S,
    "keepalives_count": KEEPALIVE_COUNT,
    "tcp_user_timeout": USER_TIMEOUT_MS,
}
#: The same socket options for a MySQL or MariaDB connection (PyMySQL), which sets none.
_TCP_OPTIONS = (
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS),
)


def postgres_options(url: str | URL, lock_timeout_s: float | None = None) -> dict[str, Any]:
    """``POSTGRES_OPTIONS`` that ``url`` does not set itself; with ``lock_timeout_s``, also
    libpq's ``options`` with that ``lock_timeout``, unless the URL's ``options`` set one.
    Any other setting there (a ``search_path``) is kept, and so is ``PGOPTIONS``, which
    libpq reads only for a connection that names no ``options``."""
    query = make_url(url).query
    options: dict[str, Any] = {n: v for n, v in POSTGRES_OPTIONS.items() if n not in query}
    given = query.get("options", os.environ.get("PGOPTIONS", ""))
    given = " ".join(given) if isinstance(given, tuple) else given
    if lock_timeout_s is not None and "lock_timeout" not in given:
        options["options"] = f"{given} -c lock_timeout={round(lock_timeout_s * 1000)}".strip()
    return options


def _mysql_lock_waits(seconds: float) -> Callable[[Any, Any], None]:
    """A ``connect`` listener that makes a MySQL or MariaDB session wait ``seconds`` (whole,
    at least 1) for a row lock (InnoDB's default: 50 s) or a table's lock (``LOCK
    TABLES``, a migration; the server's default: a year) before the statement fails."""
    waits = max(1, math.ceil(seconds))
    statement = f"SET SESSION innodb_lock_wait_timeout = {waits}, lock_wait_timeout = {waits}"

    def set_waits(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()

    return set_waits


def _pymysql_connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """A PyMySQL connection over a TCP socket with ``_TCP_OPTIONS``, made within its
    connect time-out (3 s unless the URL sets ``connect_timeout``); over a Unix socket,
    PyMySQL's own."""
    if cparams.get("unix_socket"):
        return None  # SQLAlchemy connects as it would
    dbapi = dialect.loaded_dbapi
    conn = dbapi.connect(
        *cargs, **{"connect_timeout": CONNECT_TIMEOUT_S, **cparams}, defer_connect=True
    )
    source = (conn.bind_address, 0) if conn.bind_address else None
    try:
        sock = socket.create_connection((conn.host, conn.port), conn.connect_timeout, source)
    except OSError as exc:  # as PyMySQL reports it: a connection error, retriable
        raise dbapi.OperationalError(2003, f"Can't connect to MySQL server ({exc})") from exc
    for level, option, value in _TCP_OPTIONS:
        sock.setsockopt(level, option, value)
    conn.connect(sock)
    return conn


def make_engine(system: str, cfg: SQLConfig) -> Engine:
    url = cfg.engine_url()
    kwargs: dict[str, Any] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": cfg.lock_timeout_s}
    elif backend == "postgresql":
        kwargs["connect_args"] = postgres_options(url, cfg.lock_timeout_s)
    try:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
        if url.get_driver_name() == "pymysql":
            event.listen(engine, "do_connect", _pymysql_connect)
        if backend in ("mysql", "mariadb"):
            event.listen(engine, "connect", _mysql_lock_waits(cfg.lock_timeout_s))
        return engine
    except (ImportError, sa_exc.NoSuchModuleError) as exc:
        postgres = url.get_backend_name() == "postgresql"
        hint = " (pip install 'dsr-pipeline[postgres]')" if postgres else ""
        raise ConfigError(
            f"system {system!r}: no database driver for {url.drivername!r}{hint}: {exc}"
        ) from None
    except (sa_exc.ArgumentError, TypeError) as exc:
        # e.g. a password given for a sqlite:// URL; the message names no secret
        raise ConfigError(
            f"system {system!r}: the database URL and options do not fit: {type(exc).__name__}"
        ) from None


_TRANSIENT = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


def classify(system: str, exc: sa_exc.SQLAlchemyError) -> ConnectorError:
    """A retriable error for a connection or lock problem, a fatal one otherwise.

    The message names the error class and code, never the statement's values.
    """
    orig = getattr(exc, "orig", None)
    transient = isinstance(exc, _TRANSIENT) or getattr(exc, "connection_invalidated", False)
    parts = [type(orig or exc).__name__]
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    if code:
        parts.append(f"[{code}]")
    lines = str(orig).strip().splitlines() if orig is not None else []
    if transient and lines:
        parts.append(lines[0][:200])  # e.g. "database is locked", "connection refused"
    message = f"system {system!r}: database error: {' '.join(parts)}"
    return RetriableError(message) if transient else FatalError(message)
