"""Signed intake: an HMAC-SHA256 over the signing time and the canonical event, with a
key per producer, and what each key may send.

A producer sends three Kafka headers with each event (requests, decisions, provision
records):

- ``dsr-key-id``: which of the keyring's keys signed it;
- ``dsr-signed-at``: when, in whole seconds since the Unix epoch (``1764752910``);
- ``dsr-signature``: ``hmac-sha256=<hex>`` over ``<dsr-signed-at>.<canonical event>``:
  the signed-at header's ASCII text, a full stop, then the event's JSON with keys
  sorted, no insignificant whitespace and UTF-8 text
  (``json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``).

So any producer, in any language, can sign an event however its JSON library lays it
out. Intake checks the signature before it reads anything else; an unsigned or
mis-signed event is rejected and audited, and never executed. A signature is fresh for
``DSR_SIGNATURE_MAX_AGE_S`` (600 s) either side of intake's clock: one older or
missing its signed-at is rejected ``stale_signature``, so a captured event cannot be
replayed later. (Within the window a replay is an identical re-send, which changes
nothing: ``services.ledger.resends``.) Keep the window longer than intake may lag
behind the topic: an event that waited longer is rejected ``stale_signature``, named
by request id on ``dsr.requests.rejected``, for its producer to sign and send again.

``Keyring.verify`` returns the signing key's id, which every audit row of the event
names, and ``Keyring.permissions`` what that key may send (``Permissions``): requests
(of which kinds), releases of held requests, operators' decisions, provision records
(for which systems). An event its key may not send is rejected ``not_permitted``. An
operator's decision is the key owner's: ``decided_by`` is the key's ``owner``.

The keyring is a JSON file, readable only by its owner (``DSR_SIGNING_KEYS``)::

    {"keys": {
      "ops": {"secret": "<hex>", "owner": "operator", "requests": ["*"],
              "releases": true, "decisions": true, "provisions": ["*"]},
      "crm-export": {"secret": "<hex>", "owner": "CRM export job",
                     "requests": ["disclosure"], "provisions": ["crm"]},
      "legacy": "<hex>"}}

A permission left out is not granted. A key given as a bare hex secret (the keyring
format before permissions) may send requests of every kind and releases, and nothing
else: no decisions, no provision records. ``dsr up`` creates a keyring with one key,
``ops``, allowed everything, the first time it starts; production mounts it from a
secret store. ``dsr keys producers`` shows each key's owner and permissions.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.files import stamp, write_atomic

KEY_ID_HEADER = "dsr-key-id"
SIGNED_AT_HEADER = "dsr-signed-at"
SIGNATURE_HEADER = "dsr-signature"
SIGNING_HEADERS = frozenset({KEY_ID_HEADER, SIGNED_AT_HEADER, SIGNATURE_HEADER})
SCHEME = "hmac-sha256="
DEFAULT_KEY_ID = "ops"
#: How far from intake's clock a signature's time may be (``DSR_SIGNATURE_MAX_AGE_S``).
DEFAULT_MAX_AGE_S = 600.0
log = logging.getLogger("dsr.signing")
ANY = "*"

Headers = Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None


class SignatureError(Exception):
    """The event is not signed by a known key; ``reason_code`` says how. ``key_id`` is
    the key that did sign it, when the signature holds but is stale."""

    def __init__(self, reason_code: str, message: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.key_id = key_id


class KeyringError(Exception):
    """The keyring file is missing or malformed."""


@dataclass(frozen=True)
class Permissions:
    """What one key may send. ``requests`` and ``provisions`` hold request kinds and
    system names, or ``"*"`` for all."""

    owner: str
    requests: frozenset[str] = frozenset({ANY})
    releases: bool = True
    decisions: bool = False
    provisions: frozenset[str] = frozenset()

    @classmethod
    def everything(cls, owner: str) -> Permissions:
        return cls(owner, frozenset({ANY}), True, True, frozenset({ANY}))

    def may_request(self, kind: str) -> bool:
        return ANY in self.requests or kind in self.requests

    def may_provision(self, system: str) -> bool:
        return ANY in self.provisions or system in self.provisions

    def as_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "requests": sorted(self.requests),
            "releases": self.releases,
            "decisions": self.decisions,
            "provisions": sorted(self.provisions),
        }


def canonical(event: Any) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(secret: bytes, signed_at: str, event: Any) -> str:
    message = signed_at.encode("ascii") + b"." + canonical(event)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Signer:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never show the secret
        return f"Signer(key_id={self.key_id!r})"

    def headers(self, raw: bytes, signed_at: float | None = None) -> list[tuple[str, bytes]]:
        """The headers that sign ``raw`` now (or at ``signed_at``, epoch seconds); none
        if it is not JSON (intake rejects it anyway)."""
        try:
            event = json.loads(raw)
        except ValueError:
            return []
        at = str(int(time.time() if signed_at is None else signed_at))
        return [
            (KEY_ID_HEADER, self.key_id.encode()),
            (SIGNED_AT_HEADER, at.encode()),
            (SIGNATURE_HEADER, (SCHEME + _mac(self.secret, at, event)).encode()),
        ]


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]
    #: Per key; a key without an entry has ``Permissions(owner=<key id>)``.
    grants: Mapping[str, Permissions] = field(default_factory=dict)
    max_age_s: float = DEFAULT_MAX_AGE_S

    def __repr__(self) -> str:
        return f"Keyring(key_ids={sorted(self.keys)!r})"

    @classmethod
    def load(cls, path: Path, max_age_s: float = DEFAULT_MAX_AGE_S) -> Keyring:
        try:
            body = json.loads(path.read_text())
            keys, grants = _entries(body["keys"])
        except FileNotFoundError:
            raise KeyringError(
                f"no signing keyring at {path}: `dsr up` creates one, or set "
                "DSR_SIGNING_KEYS (DSR_REQUIRE_SIGNATURES=false turns signing off)"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(
                f'{path} is not a keyring {{"keys": {{"<id>": {{"secret": "<hex>", ...}}}}}}: {exc}'
            ) from None
        if not keys or any(len(s) < 16 for s in keys.values()):
            raise KeyringError(f"{path}: every key needs at least 16 bytes (32 hex digits)")
        return cls(keys, grants, max_age_s)

    @classmethod
    def ensure(cls, path: Path, key_id: str = DEFAULT_KEY_ID) -> Keyring:
        """Load the keyring, or create it, owner-readable only, with one new key that
        may send everything."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"secret": secrets.token_hex(32), **Permissions.everything("operator").as_json()}
        body = json.dumps({"keys": {key_id: entry}}, indent=2) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        return cls.load(path)

    def signer(self, key_id: str | None = None) -> Signer:
        chosen = key_id or (DEFAULT_KEY_ID if DEFAULT_KEY_ID in self.keys else min(self.keys))
        if chosen not in self.keys:
            raise KeyringError(f"no key {chosen!r} in the keyring (it has {sorted(self.keys)})")
        return Signer(chosen, self.keys[chosen])

    def permissions(self, key_id: str) -> Permissions:
        return self.grants.get(key_id) or Permissions(owner=key_id)

    def verify(self, event: Any, headers: Headers, now: float | None = None) -> str:
        """Return the signing key's id, or raise ``SignatureError``."""
        found = dict(headers.items() if isinstance(headers, Mapping) else (headers or ()))
        key_id = _text(found.get(KEY_ID_HEADER))
        signature = _text(found.get(SIGNATURE_HEADER))
        if not key_id or not signature:
            raise SignatureError("unsigned", "the event has no dsr-key-id and dsr-signature")
        secret = self.keys.get(key_id)
        if secret is None:
            raise SignatureError("unknown_key", f"no producer key {key_id[:64]!r}")
        signed_at = _text(found.get(SIGNED_AT_HEADER)) or ""
        if not signed_at.isascii() or not signed_at.isdigit():
            raise SignatureError(
                "stale_signature", "the event has no dsr-signed-at (epoch seconds) header"
            )
        if not signature.startswith(SCHEME) or not hmac.compare_digest(
            signature[len(SCHEME) :], _mac(secret, signed_at, event)
        ):
            raise SignatureError("bad_signature", f"the signature does not match key {key_id!r}")
        age = (time.time() if now is None else now) - int(signed_at)
        if abs(age) > self.max_age_s:
            raise SignatureError(
                "stale_signature",
                f"signed {int(age)} s from intake's clock; at most {int(self.max_age_s)} s",
                key_id,
            )
        return key_id


class Verifier(Protocol):
    """What intake asks of a keyring: ``Keyring``, or ``KeyringFile``."""

    def verify(self, event: Any, headers: Headers, now: float | None = None) -> str: ...

    def permissions(self, key_id: str) -> Permissions: ...


class KeyringFile:
    """The keyring at ``path``, read again whenever the file changes (its inode, size or
    modification time): a key an operator adds, changes or removes counts from the next
    event on, with no restart, so a key taken out is refused at once. A file that has
    changed into something that is not a keyring (half written, malformed, gone) raises
    ``KeyringError`` at every event until it is one again: nothing is verified against
    a keyring the file no longer holds, and the events wait (``streams.parking``)."""

    def __init__(self, path: Path, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.path, self.max_age_s = path, max_age_s
        self._seen: tuple[int, int, int] | None = None
        self._keyring: Keyring | None = None

    def current(self) -> Keyring:
        if (seen := stamp(self.path)) is None:
            raise KeyringError(f"no signing keyring at {self.path}")
        if self._keyring is None or seen != self._seen:
            again, self._keyring = self._seen is not None, None  # None until it loads
            self._keyring, self._seen = Keyring.load(self.path, self.max_age_s), seen
            if again:
                log.info(
                    "keyring read again", extra={"key_ids": ",".join(sorted(self._keyring.keys))}
                )
        return self._keyring

    def verify(self, event: Any, headers: Headers, now: float | None = None) -> str:
        return self.current().verify(event, headers, now)

    def permissions(self, key_id: str) -> Permissions:
        return self.current().permissions(key_id)


#: What a key id may be: it travels in the ``dsr-key-id`` header and names audit rows.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def add_key(path: Path, key_id: str, may: Permissions) -> str:
    """A new key ``key_id`` that may send what ``may`` says, added to the keyring file
    (``_editing``); its secret, in hex, for its producer. ``KeyringError`` if the id is
    not one, is taken, or the file does not load."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyringError(f"{key_id!r} is not a key id: {KEY_ID_PATTERN.pattern}")
    with _editing(path) as keys:
        if key_id in keys:
            raise KeyringError(f"the keyring has a key {key_id!r} already")
        secret = secrets.token_hex(32)
        keys[key_id] = {"secret": secret, **may.as_json()}
    return secret


def remove_key(path: Path, key_id: str) -> None:
    """Take ``key_id`` out of the keyring file (``_editing``): the workers refuse what it
    signs (``unknown_key``) from their next event on."""
    with _editing(path) as keys:
        if key_id not in keys:
            raise KeyringError(f"the keyring has no key {key_id!r}")
        if len(keys) == 1:
            raise KeyringError(
                f"{key_id!r} is the keyring's last key; one without any admits nothing"
            )
        del keys[key_id]


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, Any]]:
    """The keyring file's keys, once it is known to load (``KeyringError`` if not), to
    change in the block; then the file written whole and moved into place, so a worker
    never reads it half written. One edit at a time, by an exclusive lock on a file
    beside it: each reads and writes the whole file, so two at once (two operators, a
    script) would each undo the other's change, and a revoked key could come back."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        Keyring.load(path)
        body: dict[str, Any] = json.loads(path.read_text())
        yield body["keys"]
        write_atomic(path, (json.dumps(body, indent=2) + "\n").encode())


def _entries(body: Mapping[str, Any]) -> tuple[dict[str, bytes], dict[str, Permissions]]:
    """A keyring file's keys and grants; a bare hex secret is a key with no grants."""
    keys: dict[str, bytes] = {}
    grants: dict[str, Permissions] = {}
    for key_id, entry in body.items():
        if isinstance(entry, str):
            keys[str(key_id)] = bytes.fromhex(entry)
            continue
        keys[str(key_id)] = bytes.fromhex(entry["secret"])
        grants[str(key_id)] = Permissions(
            owner=str(entry.get("owner") or key_id),
            requests=frozenset(map(str, entry.get("requests", ()))),
            releases=bool(entry.get("releases", False)),
            decisions=bool(entry.get("decisions", False)),
            provisions=frozenset(map(str, entry.get("provisions", ()))),
        )
    return keys, grants


def _text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
