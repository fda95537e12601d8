"""The default notifier: every notice is a ``.eml`` file in ``<home>/outbox``."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from services.files import write_atomic
from services.notify.base import Receipt
from services.notify.message import render
from services.notify.notice import Notice


class OutboxNotifier:
    """Writes ``<directory>/<request_id>/<notice id>.eml``, atomically, once per id.

    A notice already in the outbox is not written again. Request ids are restricted to
    ``[A-Za-z0-9._:-]`` at intake, so they are safe as folder and file names."""

    name = "outbox"

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    def path(self, notice: Notice) -> Path:
        return self.directory / notice.request_id / f"{notice.id}.eml"

    def send(self, notice: Notice) -> Receipt:
        self.keep(notice)
        return Receipt("outbox", addressed=notice.recipient is not None)

    def keep(self, notice: Notice, message: EmailMessage | None = None) -> None:
        """Write ``notice`` (as ``message``, when it is rendered already), unless it is
        in the outbox already."""
        target = self.path(notice)
        if not target.exists():
            write_atomic(target, (message or render(notice, self.sender)).as_bytes())
