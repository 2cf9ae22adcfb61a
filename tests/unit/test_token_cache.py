"""The api's cache of verified tokens: what it keeps, for how long, and when it forgets."""

from __future__ import annotations

import time

from services.api.token_cache import MAX_AGE_S, MAX_ENTRIES, TokenCache
from shared.models import TokenRecord

RECORD = TokenRecord(username="ann", project="p", issued_at=0.0, expires_at=time.time() + 60)


def live_cache(max_age_s: float = MAX_AGE_S, max_entries: int = MAX_ENTRIES) -> TokenCache:
    cache = TokenCache(max_age_s, max_entries)
    cache.live = True
    return cache


def test_keeps_what_it_was_given_until_evicted() -> None:
    cache = live_cache()
    assert cache.get("d1") is None
    cache.put("d1", RECORD)
    assert cache.get("d1") == RECORD
    cache.evict("d1")
    assert cache.get("d1") is None
    cache.evict("never-there")  # no error


def test_nothing_is_cached_while_changes_are_not_followed() -> None:
    cache = TokenCache()
    cache.put("d1", RECORD)
    assert cache.get("d1") is None and len(cache) == 0
    cache.live = True
    cache.put("d1", RECORD)
    cache.live = False  # e.g. the subscription is being re-established
    assert cache.get("d1") is None


def test_entries_expire_after_max_age() -> None:
    cache = live_cache(max_age_s=0.05)
    cache.put("d1", RECORD)
    assert cache.get("d1") == RECORD
    time.sleep(0.06)
    assert cache.get("d1") is None and len(cache) == 0


def test_bounded_dropping_the_least_recently_stored() -> None:
    cache = live_cache(max_entries=3)
    for d in ("a", "b", "c", "d"):
        cache.put(d, RECORD)
    assert len(cache) == 3
    assert cache.get("a") is None
    assert [cache.get(d) for d in ("b", "c", "d")] == [RECORD] * 3


def test_clear_forgets_everything() -> None:
    cache = live_cache()
    cache.put("a", RECORD)
    cache.clear()
    assert cache.get("a") is None
