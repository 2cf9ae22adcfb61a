"""`logs -f` and `events -f`: print a websocket feed, and reconnect when the API goes away.

The API closes follows with 1001 when it restarts and asks clients to come
back; a network break looks the same. The feed is opened again (with backoff,
for up to `RECONNECT_FOR_S`) right after the last item printed (its stored
position, `after=`), so what was written meanwhile follows in order and nothing
older comes again. From an API that does not say where its items are stored,
a backlog of `resume_tail` messages is asked for instead, and what was printed
already is recognised by its key — a log line by its task and line number, an
event by its time, type and message. The user is told that the feed
reconnected.
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


OpenFeed = Callable[[int, str | None], Awaitable[Feed[T]]]  # (backlog, after) -> feed


async def _reopen(
    ctx: Context, open_feed: OpenFeed[T], tail: int, after: str | None, why: str
) -> Feed[T]:
    ctx.progress(f"({why}; reconnecting)")
    loop = asyncio.get_running_loop()
    give_up = loop.time() + RECONNECT_FOR_S
    delay = FIRST_DELAY_S
    while True:
        await asyncio.sleep(delay)
        try:
            feed = await open_feed(tail, after)
        except ConnectionFailed:
            if loop.time() + delay > give_up:
                raise
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        ctx.progress("(reconnected)")
        return feed


async def print_follow(
    ctx: Context,
    open_feed: OpenFeed[T],
    tail: int,
    resume_tail: int,
    key: Callable[[T], Hashable],
    show: Callable[[T], str],
    position: Callable[[T], str | None] = lambda _item: None,
) -> int:
    """Print items until the server ends the feed (a deleted service ends it: exit 0).

    `position` gives an item's stored position ("<seq>" or "<seq>:<n>"), if the
    API sent one: a reconnect resumes right after the last item printed."""
    seen = Seen()
    last: str | None = None
    feed = await open_feed(tail, None)
    try:
        while True:
            try:
                for item in await feed.receive():
                    if seen.add(key(item)):
                        ctx.say(show(item))
                        last = position(item) or last
            except ConnectionFailed as err:
                await feed.close()
                try:
                    feed = await _reopen(ctx, open_feed, resume_tail, last, str(err))
                except NotFound as gone:
                    raise FeedEnded(gone.message, 4404) from None
    except FeedEnded as err:
        ctx.progress(f"({err})")
        return 0
    finally:
        await feed.close()
