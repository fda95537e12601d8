"""The engine, and how database errors become connector errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine, create_engine, make_url
from sqlalchemy import exc as sa_exc

from connectors.errors import ConfigError, ConnectorError, FatalError, RetriableError
from connectors.sql.config import SQLConfig

#: libpq's options for a PostgreSQL connection, where its URL does not set them. A host
#: that vanished (it died, or the network to it was cut) answers nothing, not even a
#: reset: without them a call waits for TCP to give up, a quarter of an hour. With
#: them, a new connection is given 3 s; one is probed after 3 s of silence and dropped
#: when 5 s pass with what was sent (a statement, a probe) unacknowledged. A statement
#: that runs long on a live server is not cut: the server's end still answers probes.
POSTGRES_OPTIONS: dict[str, int] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 3,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}


def postgres_options(url: str | URL) -> dict[str, int]:
    """``POSTGRES_OPTIONS`` that ``url`` does not set itself."""
    given = make_url(url).query
    return {name: value for name, value in POSTGRES_OPTIONS.items() if name not in given}


def make_engine(system: str, cfg: SQLConfig) -> Engine:
    url = cfg.engine_url()
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": cfg.busy_timeout_s}
    elif url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = postgres_options(url)
    try:
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
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
