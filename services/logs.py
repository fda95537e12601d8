"""Structured JSON logs. Lines about a request carry ``request_id`` and ``stage``.

Subject identifiers and record values are never passed to a logger; only the
fields named in ``extra=`` by the pipeline's own code reach the output. Secrets (URL
passwords, authorization headers, credentials) are masked in every line
(``services.masking``), including those of libraries that log through ``logging``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

from services.masking import mask

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return mask(json.dumps(line, default=str, ensure_ascii=False))


_factory = logging.getLogRecordFactory()


def _masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """A log record whose message has its secrets masked, whichever handler prints it."""
    record = _factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format is logging's to report, when emitted
        return record
    if mask(message) != message:
        record.msg, record.args = mask(message), None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = mask(_plain.formatException(record.exc_info))
    return record


_plain = logging.Formatter()


#: Libraries' records (kafka-python, aiokafka, Faust, mode, warnings) from this level.
LIBRARY_LEVEL = "WARNING"


def library_config() -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that prints every library's records as JSON on
    stderr: the root logger's. Faust's worker applies it in place of its coloured
    console handler (``faust.App(logging_config=...)``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["json"], "level": LIBRARY_LEVEL},
    }


def configure_logging(level: str) -> None:
    """The pipeline's loggers (``dsr.*``) at ``DSR_LOG_LEVEL``, every other logger's
    records at WARNING and above, and Python's warnings: all one JSON object a line."""
    logging.config.dictConfig(library_config())
    logging.captureWarnings(True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("dsr")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    if logging.getLogRecordFactory() is not _masked_record:
        logging.setLogRecordFactory(_masked_record)
