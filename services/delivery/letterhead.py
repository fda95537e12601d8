"""Who writes to the principal: the business, its address, its contact window and its
complaints desk, from one file (``DSR_LETTERHEAD``, default ``<DSR_HOME>/letterhead.yaml``).

Every field is ``{ja: ..., en: ...}``::

    business: {ja: 株式会社サンプル, en: Sample K.K.}
    address: {ja: 〒100-0001 東京都千代田区千代田1-1, en: "1-1 Chiyoda, Tokyo 100-0001"}
    contact: {ja: "個人情報お問い合わせ窓口　03-0000-0000（平日9時〜17時）", en: ...}
    complaints: {ja: ..., en: ...}

Without the file, letters say the business is not configured, visibly, and the
complaints desk is ``DSR_COMPLAINTS_CONTACT``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from services.rules.sentence import Sentence

NOT_CONFIGURED = Sentence("（事業者名未設定）", "(business name not configured)")


class LetterheadError(ValueError):
    """The letterhead file cannot be used; the message says where and why."""


class Letterhead(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    business: Sentence = NOT_CONFIGURED
    address: Sentence | None = None
    #: The window that answers the principal's questions about this request.
    contact: Sentence | None = None
    #: Whom the principal complains to.
    complaints: Sentence

    @classmethod
    def default(cls, complaints: str) -> Letterhead:
        """No file: ``complaints`` (``ja / en``, or one text for both) is the desk."""
        ja, sep, en = complaints.partition(" / ")
        return cls(complaints=Sentence(ja, en) if sep else Sentence(complaints, complaints))

    @classmethod
    def load(cls, path: Path, complaints: str) -> Letterhead:
        if not path.exists():
            return cls.default(complaints)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(data, dict):
                data.setdefault(
                    "complaints", data.get("contact") or cls.default(complaints).complaints
                )
            return cls.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            raise LetterheadError(f"{path}: {exc}") from None
