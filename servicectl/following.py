"""`logs -f` and `events -f`: print a websocket feed, and reconnect when the API goes away.

The API closes follows with 1001 when it restarts and asks clients to come
back; a network break looks the same. The feed is opened again (with backoff,
for up to `RECONNECT_FOR_S`) with a backlog of `resume_tail` messages, and
what was printed already is recognised by its key — a log line by its task and
line number, an event by its time, type and message — so nothing is printed
twice. Lines written while disconnected that fall outside the backlog are
lost; the user is told that the feed reconnected.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from servicectl.context import Context
from servicectl.errors import ConnectionFailed, FeedEnded, NotFound
from servicectl.feeds import Feed

T = TypeVar("T")

RECONNECT_FOR_S = 60.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0
REMEMBERED_KEYS = 20_000


class Seen:
    """The keys of the last `limit` printed items."""

    def __init__(self, limit: int = REMEMBERED_KEYS) -> None:
        self.limit = limit
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False if it was remembered already."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.limit:
            self._keys.popitem(last=False)
        return True


async def _reopen(
    ctx: Context, open_feed: Callable[[int], Awaitable[Feed[T]]], tail: int, why: str
) -> Feed[T]:
    ctx.progress(f"({why}; reconnecting)")
    loop = asyncio.get_running_loop()
    give_up = loop.time() + RECONNECT_FOR_S
    delay = FIRST_DELAY_S
    while True:
        await asyncio.sleep(delay)
        try:
            feed = await open_feed(tail)
        except ConnectionFailed:
            if loop.time() + delay > give_up:
                raise
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        ctx.progress("(reconnected)")
        return feed


async def print_follow(
    ctx: Context,
    open_feed: Callable[[int], Awaitable[Feed[T]]],
    tail: int,
    resume_tail: int,
    key: Callable[[T], Hashable],
    show: Callable[[T], str],
) -> int:
    """Print items until the server ends the feed (a deleted service ends it: exit 0)."""
    seen = Seen()
    feed = await open_feed(tail)
    try:
        while True:
            try:
                for item in await feed.receive():
                    if seen.add(key(item)):
                        ctx.say(show(item))
            except ConnectionFailed as err:
                await feed.close()
                try:
                    feed = await _reopen(ctx, open_feed, resume_tail, str(err))
                except NotFound as gone:
                    raise FeedEnded(gone.message, 4404) from None
    except FeedEnded as err:
        ctx.progress(f"({err})")
        return 0
    finally:
        await feed.close()
