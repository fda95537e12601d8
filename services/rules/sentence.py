"""A statement in Japanese and English: what every text the principal reads is made of."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sentence:
    """One statement, in Japanese and in English; ``str()`` gives both, ``ja / en``."""

    ja: str
    en: str

    def __str__(self) -> str:
        return f"{self.ja} / {self.en}"
