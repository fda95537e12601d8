"""How the principal receives a package or letter, as the response notice says it.

Never a server path: a letter goes by post; an electronic package by a presigned
link that expires, where the package store can make one (S3); otherwise the
enquiries desk arranges the hand-over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services import statements
from services.delivery.links import NoPackage, link_to
from services.delivery.storage import LinkUnsupported, Storage
from services.rules.sentence import Sentence
from streams.records import ResponseEvent

BY_POST = Sentence(
    "回答書面をご指定の送付先へ郵送いたします。", "We send the letter to you by post."
)
HOLD_BY_POST = Sentence(
    "このお知らせと同じ内容の書面を、ご指定の送付先へ郵送いたします。",
    "We also send this to you by post.",
)
ARRANGED = Sentence(
    "開示データは、お問い合わせ窓口から安全な方法でお渡しします。お渡しの方法は別途ご連絡いたします。",
    "Our enquiries desk will hand your data over to you securely, and will contact you "
    "to arrange it.",
)


def handover(storage: Storage, response: ResponseEvent, expires: timedelta) -> Sentence | None:
    """How ``response``'s package or letter reaches the principal; None if it has none."""
    if response.letter:
        return BY_POST
    if not response.package:
        return None
    body = response.model_dump(mode="json")
    try:
        url = link_to(storage, response.request_id, body, expires)
    except (LinkUnsupported, NoPackage):
        return ARRANGED
    until = statements.when(datetime.now(UTC) + expires, response.regulation.value)
    return Sentence(
        f"次のリンクからダウンロードできます（{until.ja}まで有効）。\n{url}",
        f"Download it from this link, valid until {until.en}:\n{url}",
    )
