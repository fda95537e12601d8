"""Parking: one request whose handling raises never stops the worker.

Errors split in two::

    Exception
     ├── transient: the infrastructure, not the request (``is_transient``)
     │    ├── sqlalchemy OperationalError, InterfaceError   the ledger locked or unreachable
     │    ├── KafkaError (aiokafka, kafka-python), ConnectionError, TimeoutError   the broker
     │    ├── StorageUnavailable   the package store (S3) unreachable past its retries
     │    ├── KeyringError     the signing keyring's file changed into one that does not
     │    │                    load: signed events wait for it (``KeyringFile``)
     │    └── OSError ENOSPC, EDQUOT, EROFS   a disk full, over quota or read-only (the
     │        package directory, the outbox)
     │        the batch waits and is handled again (``streams.transient.patiently``),
     │        never parked nor dead-lettered
     ├── the event's own, dead-lettered as before, the request left as it is
     │    ├── PoisonEvent      a result that does not validate or open
     │    └── NotifyError      the mail server refused or is down: the notice is
     │                         re-sent by ``dsr dlq redrive``, the request goes on
     └── anything else: the request's own, so the request is parked (``parks``)

A parked request is set aside in the ledger (``Ledger.park``: status ``parked``, the
exception type as its hold reason) and audited with where it raised; the sweeper and
fan-out leave it alone until an operator runs ``dsr park release``. Only the exception's
type and the code location are kept, never its message: that may quote personal data.
"""

from __future__ import annotations

import errno
import logging
import traceback
from pathlib import Path

from aiokafka.errors import KafkaError as AsyncKafkaError
from kafka.errors import KafkaError
from sqlalchemy.exc import InterfaceError, OperationalError

from services.delivery.storage import StorageUnavailable
from services.files import NO_ROOM
from services.notify.errors import NotifyError
from services.signing import KeyringError
from streams.agents.decode import PoisonEvent
from streams.context import Pipeline

log = logging.getLogger("dsr.parking")

TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    AsyncKafkaError,
    KafkaError,
    ConnectionError,
    TimeoutError,
    StorageUnavailable,
    KeyringError,
)
#: A disk that takes no more writes: full, over quota, or remounted read-only.
DISK_ERRNOS = NO_ROOM | {errno.EROFS}
_ROOT = Path(__file__).resolve().parents[1]


def is_transient(exc: BaseException) -> bool:
    """The database, the broker, the package store or a disk, not the request: retry,
    do not park."""
    return isinstance(exc, TRANSIENT) or (isinstance(exc, OSError) and exc.errno in DISK_ERRNOS)


def parks(exc: BaseException) -> bool:
    """Whether ``exc`` is the request's own fault, so that the request is parked."""
    return not is_transient(exc) and not isinstance(exc, PoisonEvent | NotifyError)


def where(exc: BaseException) -> str:
    """The innermost frame of this project's code the exception passed through, as
    ``path:line in function`` (nothing of the exception's message)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_ROOT)]
    frame = (ours or frames)[-1] if frames else None
    if frame is None:
        return "unknown"
    path = Path(frame.filename).resolve()
    shown = path.relative_to(_ROOT) if path.is_relative_to(_ROOT) else Path(path.name)
    return f"{shown}:{frame.lineno} in {frame.name}"


def reason(exc: BaseException) -> dict[str, str]:
    """What is recorded of ``exc``: its type and where it was raised."""
    return {"error_code": type(exc).__name__, "where": where(exc)}


def park(ctx: Pipeline, stage: str, request_id: str, exc: BaseException) -> bool:
    """Park ``request_id`` after ``exc`` in ``stage``; False if it is not an unanswered
    request of the ledger (then the caller's dead letter is all that is kept)."""
    why = reason(exc)
    parked = ctx.ledger.park(request_id, stage, why["error_code"], why["where"])
    if parked:
        log.error("request parked", extra={"request_id": request_id, "stage": stage, **why})
    return parked
