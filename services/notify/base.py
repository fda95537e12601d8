"""The notifier interface: ``send(notice)``, and what a send reports back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from services.notify.notice import Notice


@dataclass(frozen=True)
class Receipt:
    """How a notice left: by which channel, and whether it had anyone to go to."""

    channel: Literal["outbox", "smtp"]
    addressed: bool


class Notifier(Protocol):
    """Sends notices. ``send`` may be called again with the same notice (after a crash
    between sending and recording it); implementations keep that harmless where they
    can, and the notice's Message-ID makes a repeat recognisable where they cannot."""

    name: str

    def send(self, notice: Notice) -> Receipt: ...
