"""The door every event goes through: size, encoding, depth, signature, sealing and
schema, each refusal with its reason code (``Rejection``). Intake, decisions, provision
records and ``dsr provisions import`` parse with it."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from services.crypto import CryptoError
from services.crypto.sealing import SEALED_REQUEST, Sealer
from services.signing import Headers, SignatureError, Verifier

M = TypeVar("M", bound=BaseModel)

MAX_EVENT_BYTES = 256 * 1024
#: Deepest nesting of objects and arrays accepted; the schema itself needs under ten.
MAX_DEPTH = 64


class Rejection(Exception):
    """An event refused at the door; ``key_id`` is the key that signed it, if known."""

    def __init__(
        self, reason_code: str, errors: list[dict[str, Any]], key_id: str | None = None
    ) -> None:
        super().__init__(reason_code)
        self.reason_code = reason_code
        self.errors = errors
        self.key_id = key_id


def not_permitted(key_id: str | None, what: str) -> Rejection:
    return Rejection("not_permitted", [{"msg": f"key {key_id!r} may not send {what}"}], key_id)


def parse(
    raw: bytes,
    keyring: Verifier | None,
    headers: Headers,
    model: type[M],
    sealer: Sealer | None = None,
) -> M:
    """Decode, check the signature, open a sealed event and validate as ``model``; raise
    ``Rejection`` with a reason code (``parse_signed``, without the key)."""
    return parse_signed(raw, keyring, headers, model, sealer)[0]


def parse_signed(
    raw: bytes,
    keyring: Verifier | None,
    headers: Headers,
    model: type[M],
    sealer: Sealer | None = None,
) -> tuple[M, str | None]:
    """The event as ``model``, and the id of the producer key that signed it; raise
    ``Rejection`` with a reason code.

    Without a ``keyring`` no signature is required (``DSR_REQUIRE_SIGNATURES=false``) and
    the key id is None. The signature covers the event as sent, sealed or not.
    """
    key_id = None
    if len(raw) > MAX_EVENT_BYTES:
        raise Rejection(
            "too_large", [{"msg": f"event is {len(raw)} bytes, over {MAX_EVENT_BYTES}"}]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection("invalid_encoding", [{"msg": f"not UTF-8 at byte {exc.start}"}]) from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise Rejection("too_deep", [{"msg": f"nested over {MAX_DEPTH} levels"}]) from None
    except json.JSONDecodeError as exc:
        raise Rejection("invalid_json", [{"msg": str(exc)[:200]}]) from None
    if _deeper_than(obj, MAX_DEPTH):
        raise Rejection("too_deep", [{"msg": f"nested over {MAX_DEPTH} levels"}])
    if keyring is not None:
        try:
            key_id = keyring.verify(obj, headers)
        except SignatureError as exc:
            raise Rejection(exc.reason_code, [{"msg": str(exc)}], exc.key_id) from None
    if isinstance(obj, dict) and SEALED_REQUEST in obj:
        if sealer is None:
            raise Rejection("cannot_open", [{"msg": "sealed, and this worker has no keys"}])
        try:
            obj = sealer.open_request(obj)
        except (CryptoError, ValueError, TypeError) as exc:
            raise Rejection("cannot_open", [{"msg": str(exc)[:200]}]) from None
    try:
        return model.model_validate(obj), key_id
    except ValidationError as exc:
        # Never echo the offending input back: it may be personal data.
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "type": e["type"], "msg": e["msg"][:200]}
            for e in exc.errors(include_input=False)
        ]
        raise Rejection("schema_violation", errors) from None
    except RecursionError:
        raise Rejection("schema_violation", [{"msg": "event is nested too deeply"}]) from None


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether objects and arrays nest in ``obj`` more than ``limit`` deep (no recursion)."""
    level = [obj] if isinstance(obj, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return False
