"""Signed intake: an HMAC-SHA256 over the canonical event, with a key per producer.

A producer sends two Kafka headers with each request event:

- ``dsr-key-id``: which of the keyring's keys signed it;
- ``dsr-signature``: ``hmac-sha256=<hex>`` over the *canonical* event, its JSON with
  keys sorted, no insignificant whitespace and UTF-8 text
  (``json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``).

So any producer, in any language, can sign an event however its JSON library lays it
out. Intake checks the signature before it reads anything else; an unsigned or
mis-signed event is rejected and audited, and never executed. ``Keyring.verify``
returns the signing key's id, which the ledger's audit rows of admissions, releases
and rejected re-sends name. A key signs events, not requests: what a re-send under a
known ``request_id`` may change is the ledger's rule (``services.ledger.resends``).

The keyring is a JSON file, ``{"keys": {"<key id>": "<hex secret>", ...}}``, readable
only by its owner (``DSR_SIGNING_KEYS``). ``dsr up`` creates one with a single key,
``ops``, the first time it starts; production mounts it from a secret store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_ID_HEADER = "dsr-key-id"
SIGNATURE_HEADER = "dsr-signature"
SCHEME = "hmac-sha256="
DEFAULT_KEY_ID = "ops"

Headers = Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None


class SignatureError(Exception):
    """The event is not signed by a known key; ``reason_code`` says how."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class KeyringError(Exception):
    """The keyring file is missing or malformed."""


def canonical(event: Any) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(secret: bytes, event: Any) -> str:
    return hmac.new(secret, canonical(event), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Signer:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never show the secret
        return f"Signer(key_id={self.key_id!r})"

    def headers(self, raw: bytes) -> list[tuple[str, bytes]]:
        """The headers that sign ``raw``; none if it is not JSON (intake rejects it anyway)."""
        try:
            event = json.loads(raw)
        except ValueError:
            return []
        return [
            (KEY_ID_HEADER, self.key_id.encode()),
            (SIGNATURE_HEADER, (SCHEME + _mac(self.secret, event)).encode()),
        ]


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]

    def __repr__(self) -> str:
        return f"Keyring(key_ids={sorted(self.keys)!r})"

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            body = json.loads(path.read_text())
            keys = {str(k): bytes.fromhex(v) for k, v in body["keys"].items()}
        except FileNotFoundError:
            raise KeyringError(
                f"no signing keyring at {path}: `dsr up` creates one, or set "
                "DSR_SIGNING_KEYS (DSR_REQUIRE_SIGNATURES=false turns signing off)"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(
                f'{path} is not a keyring {{"keys": {{"<id>": "<hex>"}}}}: {exc}'
            ) from None
        if not keys or any(len(s) < 16 for s in keys.values()):
            raise KeyringError(f"{path}: every key needs at least 16 bytes (32 hex digits)")
        return cls(keys)

    @classmethod
    def ensure(cls, path: Path, key_id: str = DEFAULT_KEY_ID) -> Keyring:
        """Load the keyring, or create it, owner-readable only, with one new key."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": {key_id: secrets.token_hex(32)}}, indent=2) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        return cls.load(path)

    def signer(self, key_id: str | None = None) -> Signer:
        chosen = key_id or (DEFAULT_KEY_ID if DEFAULT_KEY_ID in self.keys else min(self.keys))
        if chosen not in self.keys:
            raise KeyringError(f"no key {chosen!r} in the keyring (it has {sorted(self.keys)})")
        return Signer(chosen, self.keys[chosen])

    def verify(self, event: Any, headers: Headers) -> str:
        """Return the signing key's id, or raise ``SignatureError``."""
        found = dict(headers.items() if isinstance(headers, Mapping) else (headers or ()))
        key_id = _text(found.get(KEY_ID_HEADER))
        signature = _text(found.get(SIGNATURE_HEADER))
        if not key_id or not signature:
            raise SignatureError("unsigned", "the event has no dsr-key-id and dsr-signature")
        secret = self.keys.get(key_id)
        if secret is None:
            raise SignatureError("unknown_key", f"no producer key {key_id[:64]!r}")
        if not signature.startswith(SCHEME) or not hmac.compare_digest(
            signature[len(SCHEME) :], _mac(secret, event)
        ):
            raise SignatureError("bad_signature", f"the signature does not match key {key_id!r}")
        return key_id


def _text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
