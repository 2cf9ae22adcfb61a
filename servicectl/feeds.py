"""`Feed`: one websocket of the API's follow endpoints, decoded message by message.

The logs and events follows send one JSON object per message, plus two
control messages: `{"type": "live"}` once the backlog is sent and
`{"type": "missed", "count": N}` when the client read too slowly. The server
ends a feed with close code 4404 (service deleted), 4403 (token expired or
revoked) or 1001 (shutting down); each becomes its own exception. No printing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import aiohttp
import msgspec

from servicectl.errors import (
    ApiError,
    AuthenticationFailed,
    ConnectionFailed,
    FeedEnded,
    UnexpectedAnswer,
)

T = TypeVar("T")

CLOSE_FORBIDDEN = 4403  # the session token expired or was revoked
CLOSE_GONE = 4404  # the service was deleted


class Feed(Generic[T]):
    """One websocket of JSON messages, each decoded as `T`.

    Besides data, the server sends `{"type": "live"}` once the backlog has been
    sent (`live` becomes True) and `{"type": "missed", "count": N}` when this
    client read too slowly and N messages were dropped (counted in `missed`
    and reported to `on_missed`).
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        cls: type[T],
        what: str,
        on_missed: Callable[[int], None] | None = None,
    ) -> None:
        self._ws = ws
        self._cls = cls
        self.what = what
        self.on_missed = on_missed
        self.live = False
        self.missed = 0

    async def receive(self, timeout: float | None = None) -> list[T]:
        """The data items of the next message; [] if none arrived within `timeout` seconds.

        When the server closes the websocket: `FeedEnded` if it said why (service
        deleted), `AuthenticationFailed` for an expired or revoked token,
        `ConnectionFailed` otherwise.
        """
        try:
            msg = await self._ws.receive(timeout=timeout)
        except TimeoutError:
            return []
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return self._items(msg.data)
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise ConnectionFailed(f"{self.what}: the connection broke ({self._ws.exception()})")
        if msg.type == aiohttp.WSMsgType.CLOSE:
            code, reason = int(msg.data or 0), str(msg.extra or "")
        else:
            code, reason = self._ws.close_code or 0, ""
        if code == CLOSE_FORBIDDEN:
            raise AuthenticationFailed(403, reason or "session token expired or revoked")
        if code == CLOSE_GONE:
            raise FeedEnded(reason or f"{self.what}: the service is gone", code)
        detail = f": {reason}" if reason else (f" (code {code})" if code else "")
        raise ConnectionFailed(f"{self.what}: the API closed the connection{detail}")

    def _items(self, data: str | bytes) -> list[T]:
        try:
            value = msgspec.json.decode(data)
        except msgspec.DecodeError as err:
            raise UnexpectedAnswer(f"{self.what}: a message is not JSON ({err})") from None
        values = value if isinstance(value, list) else [value]
        out: list[T] = []
        for item in values:
            if isinstance(item, dict):
                if isinstance(item.get("Error"), str):
                    raise ApiError(0, str(item["Error"]))
                kind = item.get("type")
                if kind == "live":
                    self.live = True
                    continue
                if kind == "missed":
                    count = item.get("count")
                    count = count if isinstance(count, int) else 0
                    self.missed += count
                    if self.on_missed is not None:
                        self.on_missed(count)
                    continue
            try:
                out.append(msgspec.convert(item, self._cls))
            except msgspec.ValidationError as err:
                raise UnexpectedAnswer(f"{self.what}: unexpected message: {err}") from None
        return out

    async def close(self) -> None:
        await self._ws.close()

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            for item in await self.receive():
                yield item
