"""Claim check: a sealed task result too large for a Kafka message travels by reference.

A disclosure can find megabytes of records, more than a broker takes in one message
(1 MiB by default). A runner whose sealed result is larger than
``DSR_CLAIM_CHECK_BYTES`` puts the sealed value in the package store under
``claims/<request_id>/<sha256 of the value>`` and sends the result with ``claim``
naming it and ``sealed`` empty; the aggregator reads it back before it opens the
result. The value stays sealed under the request's data key (``services.crypto.sealing``),
so the store holds ciphertext only (and S3 encrypts it again server-side), and
shredding the key leaves it unreadable with the rest. A claim is named by its
content, so a redelivered result writes the same object again and a redriven task
that answers differently never overwrites the answer the ledger kept.
"""

from __future__ import annotations

import hashlib

from services.delivery.encrypted import open_store
from services.delivery.storage import Storage
from services.settings import Settings
from streams.records import TaskResult

CONTENT_TYPE = "application/vnd.dsr.sealed+base64"


class ClaimCheck:
    """Moves large sealed values of task results to ``storage`` and back."""

    def __init__(self, storage: Storage, threshold_bytes: int) -> None:
        self.storage = storage
        self.threshold_bytes = threshold_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimCheck:
        """The package store's backend as such: the values it keeps are sealed already."""
        return cls(open_store(settings), settings.claim_check_bytes)

    def check_in(self, result: TaskResult) -> TaskResult:
        """``result`` as sent: its sealed value in the store if it is too large."""
        if result.sealed is None or len(result.sealed) <= self.threshold_bytes:
            return result
        data = result.sealed.encode()
        key = f"claims/{result.request_id}/{hashlib.sha256(data).hexdigest()}"
        self.storage.put(key, data, CONTENT_TYPE)
        return result.model_copy(update={"sealed": None, "claim": key})

    def redeem(self, result: TaskResult) -> TaskResult:
        """``result`` with the sealed value its claim names back in place.

        Raises ``ObjectNotFound`` when the store does not hold it, ``ValueError`` when
        what it holds is not the value the claim names."""
        if result.claim is None:
            return result
        if not result.claim.startswith(f"claims/{result.request_id}/"):
            raise ValueError(f"claim {result.claim} is not request {result.request_id}'s")
        data = self.storage.get(result.claim)
        if hashlib.sha256(data).hexdigest() != result.claim.rsplit("/", 1)[1]:
            raise ValueError(f"claim {result.claim} does not hold the value it names")
        return result.model_copy(update={"sealed": data.decode(), "claim": None})
