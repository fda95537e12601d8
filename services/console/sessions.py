"""Signed session cookies and the forms' anti-forgery tokens.

A session is ``name|expires|nonce|mac``, the MAC an HMAC-SHA256 under a secret kept in
``<DSR_HOME>/console-secret`` (owner-only, made on first use). Nothing is stored on
the server: a restart keeps sessions, and deleting the secret ends them all.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

COOKIE = "dsr_console"
LIFETIME_S = 8 * 3600


class Sessions:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def at(cls, path: Path) -> Sessions:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return cls(bytes.fromhex(path.read_text().strip()))

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, name: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + LIFETIME_S)
        body = f"{name}|{expires}|{secrets.token_hex(8)}"
        return f"{body}|{self._mac(body)}"

    def user(self, token: str | None, now: float | None = None) -> str | None:
        """The session's user name, if the token is ours and not expired."""
        if not token or token.count("|") != 3:
            return None
        body, _, mac = token.rpartition("|")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        name, expires, _ = body.split("|")
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return name

    def csrf(self, token: str) -> str:
        """The anti-forgery token a form of this session carries."""
        return self._mac(f"csrf|{token}")

    def csrf_ok(self, token: str | None, given: str | None) -> bool:
        return bool(token and given) and hmac.compare_digest(self.csrf(token or ""), given or "")
