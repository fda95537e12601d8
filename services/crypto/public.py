"""Sealing to the pipeline's public key: producers seal, only workers and runners open.

A pipeline key is an X25519 key pair named by a key id. Its private half lives under
``<DSR_KEYS_DIR>/pipeline/<key id>.key``, wrapped with the master key (AES-256-GCM,
the format, key id and creation time as associated data); its public half is exported
for producers by ``dsr keys public`` as one JSON object ``{"format", "key_id",
"public_key"}``. A producer holding only that can seal, and can open nothing.

A sealed blob (``seal_to``) is::

    offset  size  field
    0       1     version, 0x02
    1       1     n, the length of the key id (1..128)
    2       n     key id of the pipeline key sealed to, ASCII
    2+n     32    the sender's ephemeral X25519 public key, new for every blob
    34+n    12    nonce
    46+n    rest  ciphertext, then the 16-byte GCM tag

The AES-256 key is HKDF-SHA256 of the X25519 shared secret, salted with the ephemeral
and the recipient public keys; the associated data is the header (everything before the
nonce), a NUL and the blob's name (``RequestEvent``, ``DeadLetter``), so a blob moved
from one use to another does not open.

Rotation: ``PipelineKeys.create`` adds a key, which becomes the newest; every private
key stays in the directory and ``open`` picks it by the key id in the blob. Producers
move to the new public key; the old private key is retired (``retire``) once no event
sealed to it remains on any topic or in the ledger (see docs/operations.md).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.crypto.errors import BlobError, MasterKeyError
from services.crypto.keys import check_key_id
from services.crypto.local import LocalKeyProvider, _create_exclusive
from services.settings import Settings

__all__ = [
    "PUBLIC_FORMAT",
    "PipelineKeys",
    "PublicKey",
    "blob_key_id",
    "export_for_producers",
    "seal_to",
]

VERSION = 2
PRIVATE_FORMAT = "dsr-pipeline-key/1"
PUBLIC_FORMAT = "dsr-pipeline-public-key/1"
_POINT = 32
_NONCE = 12
_TAG = 16
_INFO = b"dsr-sealed-to/1"


@dataclass(frozen=True)
class PublicKey:
    """A pipeline public key, as producers hold it."""

    key_id: str
    raw: bytes

    def export(self) -> str:
        return json.dumps(
            {
                "format": PUBLIC_FORMAT,
                "key_id": self.key_id,
                "public_key": base64.b64encode(self.raw).decode(),
            }
        )

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        try:
            doc = json.loads(text)
            if doc["format"] != PUBLIC_FORMAT:
                raise ValueError(doc["format"])
            raw = base64.b64decode(doc["public_key"], validate=True)
            key = cls(check_key_id(doc["key_id"]), raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a {PUBLIC_FORMAT} document: {exc}") from None
        if len(raw) != _POINT:
            raise ValueError(f"a pipeline public key is {_POINT} bytes, not {len(raw)}")
        return key

    @classmethod
    def load(cls, path: Path) -> PublicKey:
        return cls.parse(Path(path).read_text())


def seal_to(public: PublicKey, name: str, plaintext: bytes) -> bytes:
    """``plaintext`` sealed to ``public``, under a new ephemeral sender key."""
    ident = public.key_id.encode("ascii")
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    head = bytes([VERSION, len(ident)]) + ident + eph_pub
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public.raw))
    nonce = secrets.token_bytes(_NONCE)
    key = _derive(shared, eph_pub, public.raw)
    return head + nonce + AESGCM(key).encrypt(nonce, plaintext, head + b"\0" + name.encode())


def blob_key_id(blob: bytes, *, where: str) -> str:
    """The pipeline key id a ``seal_to`` blob names, or ``BlobError``."""
    if len(blob) < 2 or blob[0] != VERSION or blob[1] == 0:
        raise BlobError("not sealed to a pipeline public key", key=where)
    if len(blob) < 2 + blob[1] + _POINT + _NONCE + _TAG:
        raise BlobError("sealed value is truncated", key=where)
    try:
        return check_key_id(blob[2 : 2 + blob[1]].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BlobError("sealed value has a malformed key id", key=where) from None


class PipelineKeys:
    """The pipeline's private keys, by key id, wrapped by the local provider's master key."""

    def __init__(self, provider: LocalKeyProvider) -> None:
        self.provider = provider
        self.dir = provider.keys_dir / "pipeline"
        self._cache: dict[str, X25519PrivateKey] = {}

    def key_ids(self) -> list[str]:
        """Every key id held, oldest first."""
        held = []
        for path in self.dir.glob("*.key"):
            held.append((json.loads(path.read_bytes())["created_at"], path.stem))
        return [kid for _, kid in sorted(held)]

    def create(self, key_id: str | None = None) -> PublicKey:
        """A new key pair (the newest, so the one ``public`` exports)."""
        kid = check_key_id(key_id or "pk-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f"))
        private = X25519PrivateKey.generate()
        raw = private.private_bytes_raw()
        created_at = datetime.now(UTC).isoformat()
        nonce = secrets.token_bytes(_NONCE)
        aad = _aad(kid, created_at)
        wrapped = AESGCM(self.provider.master_key()).encrypt(nonce, raw, aad)
        path = self.dir / f"{kid}.key"
        if path.exists():
            raise ValueError(f"pipeline key {kid!r} exists already")
        doc = {
            "format": PRIVATE_FORMAT,
            "key_id": kid,
            "created_at": created_at,
            "nonce": base64.b64encode(nonce).decode(),
            "wrapped": base64.b64encode(wrapped).decode(),
        }
        _create_exclusive(path, json.dumps(doc).encode())
        return self.public(kid)

    def public(self, key_id: str | None = None) -> PublicKey:
        """The public key of ``key_id``, or of the newest key (made when there is none)."""
        if key_id is None:
            held = self.key_ids()
            if not held:
                return self.create()
            key_id = held[-1]
        pub = self._private(key_id).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey(key_id, pub)

    def retire(self, key_id: str) -> bool:
        """Forget ``key_id``'s private key: what was sealed to it no longer opens."""
        self._cache.pop(key_id, None)
        path = self.dir / f"{check_key_id(key_id)}.key"
        try:
            path.write_bytes(b"\0" * path.stat().st_size)
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def open(self, name: str, blob: bytes, *, where: str) -> bytes:
        """A blob ``seal_to`` sealed under ``name``, opened with the private key it names."""
        kid = blob_key_id(blob, where=where)
        try:
            private = self._private(kid)
        except FileNotFoundError:
            raise BlobError(
                f"sealed to pipeline key {kid!r}, which is not held", key=where
            ) from None
        head_end = 2 + blob[1] + _POINT
        eph_pub = blob[2 + blob[1] : head_end]
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        own = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        nonce = blob[head_end : head_end + _NONCE]
        aad = blob[:head_end] + b"\0" + name.encode()
        try:
            return AESGCM(_derive(shared, eph_pub, own)).decrypt(
                nonce, blob[head_end + _NONCE :], aad
            )
        except InvalidTag:
            raise BlobError(
                "does not authenticate: altered, or sealed for another use", key=where
            ) from None

    def _private(self, key_id: str) -> X25519PrivateKey:
        hit = self._cache.get(key_id)
        if hit is not None:
            return hit
        path = self.dir / f"{check_key_id(key_id)}.key"
        doc = json.loads(path.read_bytes())
        if doc.get("format") != PRIVATE_FORMAT or doc.get("key_id") != key_id:
            raise MasterKeyError(f"{path} is not a {PRIVATE_FORMAT} file for {key_id!r}")
        try:
            raw = AESGCM(self.provider.master_key()).decrypt(
                base64.b64decode(doc["nonce"]),
                base64.b64decode(doc["wrapped"]),
                _aad(key_id, doc["created_at"]),
            )
        except InvalidTag:
            raise MasterKeyError(
                f"pipeline key {key_id!r} does not unwrap with the master key"
            ) from None
        private = X25519PrivateKey.from_private_bytes(raw)
        self._cache[key_id] = private
        return private


def _derive(shared: bytes, eph_pub: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=eph_pub + recipient, info=_INFO)
    return hkdf.derive(shared)


def _aad(key_id: str, created_at: str) -> bytes:
    return f"{PRIVATE_FORMAT}\0{key_id}\0{created_at}".encode()


def export_for_producers(settings: Settings) -> PublicKey:
    """Write the pipeline's newest public key where producers read it
    (``settings.pipeline_public_key_path``), making the key pair on first use."""
    public = PipelineKeys(LocalKeyProvider.from_settings(settings)).public()
    path = settings.pipeline_public_key_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(public.export() + "\n")
    return public
