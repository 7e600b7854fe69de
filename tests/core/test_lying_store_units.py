"""Units for what a lying store or a careless repr could do to the remote tier's helpers."""

from __future__ import annotations

import pytest

from cache_core import net
from cache_core.errors import RemoteError
from cache_core.storage.remote import sets
from cache_core.storage.remote.base import record_name


def test_a_store_that_says_every_version_exists_ends_the_walk() -> None:
    asked: list[str] = []

    def exists(name: str) -> bool:
        asked.append(name)
        return True

    store = sets.SetStore(lambda name: None, lambda d, n: None, exists, [], False, [])
    with pytest.raises(RemoteError):
        store.head("piplist:alpha")
    assert len(asked) < 64  # bounded, not forever


def test_a_real_chain_still_finds_its_end() -> None:
    names = {record_name(sets.version_key("piplist:alpha", n)) for n in range(1, 38)}
    store = sets.SetStore(lambda name: None, lambda d, n: None, names.__contains__,
                          [], False, [])
    assert store.head("piplist:alpha") == 37


def test_a_proxys_credentials_are_not_in_its_repr() -> None:
    p = net.Proxy("proxy.example", 3128, "Basic c2VjcmV0OnB3")
    assert "c2VjcmV0" not in repr(p) and "proxy.example" in repr(p)
