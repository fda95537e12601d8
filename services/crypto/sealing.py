"""Personal data in tasks and results crosses Kafka sealed under its request's data key.

A ``Task`` carries the principal's identifiers, the identity units resolved so
far and a correction's new values; a ``TaskResult`` carries the records found,
the identity units found and per-operation details (a correction's old and
new values). On the wire those fields are empty and ``sealed`` holds them, as
an AES-256-GCM blob (``services.crypto.envelope``) under the request's data key,
with the record type as authenticated data. Everything the pipeline routes and
counts by (ids, system, kind, status, error codes, field names) stays readable.

``dsr submit`` seals a request event whole to the pipeline's public key
(``RequestSealer``, ``services.crypto.public``): a producer holds only that key and
can open nothing. Intake checks its signature over the sealed form, then opens it
with the pipeline's private key (``Sealer.open_request``). The ledger keeps the request event
and its identity graph sealed the same way (``seal_field``).

Keys come from the same ``KeyProvider`` as sealed packages, so crypto-shredding a
request also leaves its old task and result events unreadable. The worker creates
the key when it first sends a task; a runner only reads it.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from pydantic import BaseModel

from services.crypto.envelope import open_blob, seal
from services.crypto.keys import CachedKeys, KeyProvider, check_key_id
from services.crypto.local import LocalKeyProvider
from services.crypto.public import PipelineKeys, PublicKey, seal_to
from services.settings import Settings
from streams.records import Task, TaskResult

#: The fields each record type seals, and what they are when empty.
SEALED_FIELDS: dict[type[BaseModel], dict[str, Any]] = {
    Task: {"identifiers": {}, "identities": [], "changes": []},
    TaskResult: {"records": [], "identities": [], "details": {}, "correction": None},
}
#: A sealed request event on ``dsr.requests``: ``{"request_id": ..., SEALED_REQUEST: b64}``.
SEALED_REQUEST = "sealed_request"
#: A ledger column kept sealed (the request event, the identity graph) holds
#: ``{SEALED_FIELD: base64}``; ``$`` keeps it apart from any identifier's name.
SEALED_FIELD = "$sealed"
M = TypeVar("M", Task, TaskResult)


class RequestSealer:
    """What a producer holds: seals request events to the pipeline's public key."""

    def __init__(self, public: PublicKey) -> None:
        self.public = public

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestSealer | None:
        """The sealer ``DSR_SEAL_EVENTS`` asks for, on ``DSR_PIPELINE_PUBLIC_KEY``."""
        if not settings.seal_events:
            return None
        return cls(PublicKey.load(settings.pipeline_public_key_path))

    def seal_request(self, raw: bytes) -> bytes:
        """A request event as ``dsr submit`` sends it: the whole event sealed to the
        pipeline. Bytes that are not a JSON object with a valid request id are returned
        as they are, for intake to reject with its reason."""
        try:
            request_id = check_key_id(json.loads(raw)["request_id"])
        except (ValueError, KeyError, TypeError):
            return raw
        sealed = base64.b64encode(seal_to(self.public, "RequestEvent", raw)).decode()
        return json.dumps({"request_id": request_id, SEALED_REQUEST: sealed}).encode()


class Sealer:
    """Seals and opens the personal fields of tasks and results (workers and runners)."""

    def __init__(self, keys: KeyProvider, pipeline: PipelineKeys | None = None) -> None:
        self.keys = keys
        if pipeline is None and isinstance(keys, LocalKeyProvider):
            pipeline = PipelineKeys(keys)
        self.pipeline = pipeline
        #: ``keys``, each data key unwrapped once a minute at most; this process's
        #: package store shares them (``open_package_storage``).
        self.data_keys = CachedKeys(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer | None:
        """The sealer ``DSR_SEAL_EVENTS`` asks for, on the local key provider."""
        return cls(LocalKeyProvider.from_settings(settings)) if settings.seal_events else None

    def seal(self, record: M) -> M:
        """``record`` with its personal fields sealed (a sealed record is returned as is)."""
        if record.sealed is not None:
            return record
        empty = SEALED_FIELDS[type(record)]
        plain = record.model_dump(mode="json", include=set(empty))
        sealed = self._seal(
            record.request_id, type(record).__name__, _json(plain), create=isinstance(record, Task)
        )
        return record.model_copy(update={**empty, "sealed": sealed})

    def open(self, record: M) -> M:
        """``record`` with its personal fields opened (a plain record is returned as is).

        Raises ``KeyDestroyed`` once the request's key is shredded, ``BlobError`` if the
        sealed value was altered or belongs to another request."""
        if record.sealed is None:
            return record
        name = type(record).__name__
        where = f"{name} of request {record.request_id}"
        plain = self._open(record.request_id, name, record.sealed, where)
        return type(record).model_validate(
            {**record.model_dump(mode="json"), **json.loads(plain), "sealed": None}
        )

    def producer(self) -> RequestSealer:
        """A producer's sealer, on the pipeline's newest public key."""
        return RequestSealer(self._pipeline().public())

    def seal_request(self, raw: bytes) -> bytes:
        """``raw`` sealed as a producer seals it (``RequestSealer.seal_request``)."""
        return self.producer().seal_request(raw)

    def seal_to_pipeline(self, name: str, plain: bytes) -> str:
        """``plain`` sealed to the pipeline's public key, base64 (``open_from_pipeline``)."""
        return base64.b64encode(seal_to(self._pipeline().public(), name, plain)).decode()

    def open_from_pipeline(self, name: str, sealed: object, where: str) -> bytes:
        """A value sealed to the pipeline's public key, opened with its private key."""
        try:
            blob = base64.b64decode(str(sealed), validate=True)
        except ValueError as exc:
            raise ValueError(f"{where}: sealed is not base64") from exc
        return self._pipeline().open(name, blob, where=where)

    def open_request(self, envelope: dict[str, Any]) -> Any:
        """The request event inside ``envelope``, decoded from JSON."""
        request_id = str(envelope.get("request_id"))
        where = f"request event {request_id}"
        plain = self.open_from_pipeline("RequestEvent", envelope[SEALED_REQUEST], where)
        event = json.loads(plain)
        if not isinstance(event, dict) or event.get("request_id") != request_id:
            raise ValueError(f"the sealed request event is not request {request_id}'s")
        return event

    def seal_field(
        self, request_id: str, name: str, value: Any, *, create: bool = True
    ) -> dict[str, str]:
        """A ledger column's value sealed: ``{SEALED_FIELD: ...}`` (``is_sealed_field``).
        Without ``create``, raises ``KeyDestroyed`` if the request has no data key."""
        return {SEALED_FIELD: self._seal(request_id, name, _json(value), create=create)}

    def open_field(self, request_id: str, name: str, stored: dict[str, str]) -> Any:
        """A value ``seal_field`` sealed."""
        where = f"{name} of request {request_id}"
        return json.loads(self._open(request_id, name, stored[SEALED_FIELD], where))

    def _pipeline(self) -> PipelineKeys:
        if self.pipeline is None:
            raise TypeError(f"{self.keys!r} holds no pipeline key pair")
        return self.pipeline

    def _seal(self, request_id: str, name: str, plain: bytes, *, create: bool) -> str:
        blob = seal(self.data_keys.data_key(request_id, create=create), request_id, name, plain)
        return base64.b64encode(blob).decode()

    def _open(self, request_id: str, name: str, sealed: object, where: str) -> bytes:
        try:
            blob = base64.b64decode(str(sealed), validate=True)
        except ValueError as exc:
            raise ValueError(f"{where}: sealed is not base64") from exc
        return open_blob(self.data_keys.data_key(request_id), request_id, name, blob, where=where)


def is_sealed_field(stored: object) -> bool:
    """Whether a ledger column's value is one ``Sealer.seal_field`` wrote."""
    return isinstance(stored, dict) and set(stored) == {SEALED_FIELD}


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
