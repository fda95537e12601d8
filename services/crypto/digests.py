"""Digests of a principal's identifiers: how the ledger finds a person without keeping
who they are.

A digest is the SHA-256 of ``type:value``, the type lowercased and the value trimmed
(and lowercased for an email, whose case does not identify anyone). Systems can
compute it themselves, so that what they send names nobody in clear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def normalise(kind: str, value: str) -> str:
    """``type:value`` as digested."""
    kind = kind.strip().lower()
    value = value.strip()
    return f"{kind}:{value.lower() if kind == 'email' else value}"


def subject_digests(identifiers: Mapping[str, str]) -> set[str]:
    """SHA-256 of each normalised identifier."""
    return {
        hashlib.sha256(normalise(k, v).encode()).hexdigest() for k, v in identifiers.items() if v
    }
