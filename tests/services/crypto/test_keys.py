from __future__ import annotations

import pytest

from services.crypto import KeyDestroyed, LocalKeyProvider
from services.crypto.keys import CachedKeys


def test_a_cached_key_is_unwrapped_once_and_forgotten_when_destroyed(
    keys: LocalKeyProvider,
) -> None:
    cached = CachedKeys(keys)
    key = cached.data_key("r-1", create=True)
    path = keys.keys_dir / "data" / "r-1.key"
    stored = path.read_bytes()
    path.write_bytes(b"not a key file")  # a read of the file now would fail

    assert cached.data_key("r-1") == key
    path.write_bytes(stored)
    assert cached.destroy("r-1")
    with pytest.raises(KeyDestroyed):
        cached.data_key("r-1")
    assert cached.list_keys() == []


def test_a_cached_key_is_read_again_once_its_time_is_up(keys: LocalKeyProvider) -> None:
    cached = CachedKeys(keys, ttl_s=0.0)
    cached.data_key("r-2", create=True)
    keys.destroy("r-2")  # by another process, say
    with pytest.raises(KeyDestroyed):
        cached.data_key("r-2")


def test_the_cache_holds_at_most_its_bound(keys: LocalKeyProvider) -> None:
    cached = CachedKeys(keys, most=2)
    for n in range(3):
        cached.data_key(f"r-{n}", create=True)
    keys.destroy("r-0")
    with pytest.raises(KeyDestroyed):
        cached.data_key("r-0")  # dropped when the third came in
