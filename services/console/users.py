"""The console's users: one per operator signing key, each with an Argon2id password hash.

``<DSR_HOME>/console-users.json`` (owner-only)::

    {"users": {"alice": {"key_id": "ops", "password": "$argon2id$v=19$..."}}}

A user's decisions are signed with their key (``services.signing``), so the audit trail
names the key's owner. ``dsr console add-user NAME --key-id ID`` adds or replaces one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
_HASHER = PasswordHasher()
#: Checked when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY = _HASHER.hash("not a password")
MIN_PASSWORD = 12


class UserError(ValueError):
    """A user cannot be added: the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    key_id: str


def _load(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    users: dict[str, dict[str, str]] = json.loads(path.read_text())["users"]
    return users


def add_user(path: Path, name: str, key_id: str, password: str) -> User:
    """Add ``name``, signing with ``key_id``, or replace its key and password."""
    if not _NAME.match(name):
        raise UserError("a user name is lowercase letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password has at least {MIN_PASSWORD} characters")
    users = _load(path)
    users[name] = {"key_id": key_id, "password": _HASHER.hash(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"users": users}, indent=2) + "\n")
    temporary.replace(path)
    return User(name, key_id)


def find(path: Path, name: str) -> User | None:
    """The user ``name``, while they are in the file (a removed user's session ends)."""
    entry = _load(path).get(name)
    return User(name, entry["key_id"]) if entry else None


def authenticate(path: Path, name: str, password: str) -> User | None:
    """The user, if ``password`` is theirs; None otherwise (same work either way)."""
    entry = _load(path).get(name)
    try:
        _HASHER.verify(entry["password"] if entry else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    return User(name, entry["key_id"]) if entry else None
