"""``LocalKeyProvider``: data keys wrapped by a master key file.

Layout (``keys_dir`` defaults to ``<DSR_HOME>/keys``)::

    master.key           32 random bytes, mode 0600, made on first use
    data/<request>.key   one wrapped data key per request (JSON, mode 0600)

A data key file holds ``{"format", "key_id", "created_at", "nonce", "wrapped"}``:
the data key sealed with AES-256-GCM under the master key, with the format,
key id and creation time as associated data, so a key file renamed to another
request's name does not unwrap. Destroying a key overwrites its file and
deletes it; on copy-on-write filesystems and SSDs the old blocks may survive,
so keep the master key off the package volume and rotate it if that matters.

The ``hash`` erasure method's HMAC key is derived from the master key with
HKDF-SHA256 and a fixed label, so it is never written anywhere; replacing the
master key changes it (values pseudonymised before no longer match new ones).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.crypto.errors import KeyDestroyed, MasterKeyError
from services.crypto.keys import DATA_KEY_BYTES, KeyInfo, check_key_id
from services.files import synced_temp
from services.settings import Settings

__all__ = ["KEY_FORMAT", "LocalKeyProvider"]

KEY_FORMAT = "dsr-data-key/1"
_NONCE_BYTES = 12
#: HKDF's label for the erasure HMAC key: changing it changes every pseudonym.
ERASURE_KEY_LABEL = b"dsr-erasure-hmac/1"


class LocalKeyProvider:
    """Per-request data keys under ``keys_dir/data``, wrapped by ``master_key_path``."""

    def __init__(self, keys_dir: Path, master_key_path: Path | None = None) -> None:
        self.keys_dir = Path(keys_dir)
        self.master_key_path = Path(master_key_path or self.keys_dir / "master.key")
        self._master: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKeyProvider:
        """The provider ``DSR_KEYS_DIR`` and ``DSR_MASTER_KEY_FILE`` name."""
        return cls(settings.keys_dir, settings.master_key_path)

    # -- the master key -----------------------------------------------------------
    def master_key(self) -> bytes:
        """The master key, read once; created (0600) when neither it nor any data key
        exists yet. A missing master key with data keys left is an error, not a new key."""
        if self._master is None:
            path = self.master_key_path
            if not path.exists():
                if any((self.keys_dir / "data").glob("*.key")):
                    raise MasterKeyError(
                        f"no master key at {path}, but data keys in {self.keys_dir / 'data'} "
                        "need it: restore it, or set DSR_MASTER_KEY_FILE to where it is"
                    )
                _create_exclusive(path, secrets.token_bytes(DATA_KEY_BYTES))
            key = path.read_bytes()
            if len(key) != DATA_KEY_BYTES:
                raise MasterKeyError(
                    f"master key {path} holds {len(key)} bytes, not {DATA_KEY_BYTES}"
                )
            self._master = key
        return self._master

    def erasure_hmac_key(self) -> bytes:
        """HKDF-SHA256 of the master key under ``ERASURE_KEY_LABEL``."""
        hkdf = HKDF(algorithm=SHA256(), length=DATA_KEY_BYTES, salt=None, info=ERASURE_KEY_LABEL)
        return hkdf.derive(self.master_key())

    # -- data keys ------------------------------------------------------------------
    def _path(self, key_id: str) -> Path:
        return self.keys_dir / "data" / f"{check_key_id(key_id)}.key"

    def data_key(self, key_id: str, *, create: bool = False) -> bytes:
        path = self._path(key_id)
        if not path.exists():
            if not create:
                raise KeyDestroyed(key_id)
            # Two writers racing for the same request end up sharing the first key.
            _create_exclusive(path, self._wrap(key_id, secrets.token_bytes(DATA_KEY_BYTES)))
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyDestroyed(key_id) from None
        if not raw.strip(b"\0"):
            raise KeyDestroyed(key_id)  # being overwritten by destroy()
        try:
            stored = json.loads(raw)
        except ValueError:
            raise MasterKeyError(f"{path} is not a {KEY_FORMAT} data key file") from None
        return self._unwrap(key_id, stored, path)

    def destroy(self, key_id: str) -> bool:
        path = self._path(key_id)
        try:
            with path.open("r+b") as f:
                f.write(b"\0" * os.fstat(f.fileno()).st_size)
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def list_keys(self) -> list[KeyInfo]:
        found = []
        for path in (self.keys_dir / "data").glob("*.key"):
            try:
                stored = json.loads(path.read_bytes())
            except (FileNotFoundError, ValueError):
                continue  # destroyed meanwhile, or being destroyed
            found.append(KeyInfo(path.stem, datetime.fromisoformat(stored["created_at"])))
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    # -- wrapping -------------------------------------------------------------------
    def _wrap(self, key_id: str, key: bytes) -> bytes:
        created_at = datetime.now(UTC).isoformat()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        wrapped = AESGCM(self.master_key()).encrypt(nonce, key, _aad(key_id, created_at))
        return json.dumps(
            {
                "format": KEY_FORMAT,
                "key_id": key_id,
                "created_at": created_at,
                "nonce": base64.b64encode(nonce).decode(),
                "wrapped": base64.b64encode(wrapped).decode(),
            }
        ).encode()

    def _unwrap(self, key_id: str, stored: dict[str, str], path: Path) -> bytes:
        if stored.get("format") != KEY_FORMAT:
            raise MasterKeyError(f"{path} is not a {KEY_FORMAT} data key file")
        try:
            return AESGCM(self.master_key()).decrypt(
                base64.b64decode(stored["nonce"]),
                base64.b64decode(stored["wrapped"]),
                _aad(key_id, stored["created_at"]),
            )
        except InvalidTag:
            raise MasterKeyError(
                f"the data key of request {key_id!r} does not unwrap with the master key "
                f"{self.master_key_path}: a different master key, or an altered key file"
            ) from None

    def __repr__(self) -> str:
        return f"LocalKeyProvider({str(self.keys_dir)!r})"


def _aad(key_id: str, created_at: str) -> bytes:
    return f"{KEY_FORMAT}\0{key_id}\0{created_at}".encode()


def _create_exclusive(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) whole, unless it exists: a synced temporary file,
    then a hard link, which fails rather than replace a file another writer made."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = synced_temp(path, data)
    try:
        with contextlib.suppress(FileExistsError):  # another writer was first: keep theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
