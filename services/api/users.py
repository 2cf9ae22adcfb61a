"""Users on NATS: read, create and change user records (the users bucket).

Used by the login endpoint and by `servicectl-admin`; needs nothing but a bus
connection, so the admin command can use it without the api's caches.
"""

from __future__ import annotations

from shared import kv, names
from shared.bus import Bus
from shared.kv import Versioned
from shared.models import TokenRecord, UserRecord


class UserDirectory:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def get(self, username: str) -> Versioned[UserRecord] | None:
        return await kv.get(self.bus.kv.users, names.user_key(username), UserRecord)

    async def create(self, user: UserRecord) -> None:
        await kv.create(self.bus.kv.users, names.user_key(user.username), user)

    async def update(self, user: UserRecord, last: int) -> None:
        await kv.update(self.bus.kv.users, names.user_key(user.username), user, last)

    async def remove(self, username: str) -> None:
        await kv.purge(self.bus.kv.users, names.user_key(username))

    async def all(self) -> list[UserRecord]:
        return [v.value for v in await kv.scan(self.bus.kv.users, ">", UserRecord)]

    async def revoke_tokens(self, username: str) -> int:
        """Revoke every session token of the user; how many there were.

        The api hears of each at once (its token cache follows the bucket) and
        ends the token's websocket tails and NATS connections."""
        found = await kv.scan(self.bus.kv.tokens, ">", TokenRecord)
        mine = [v.key for v in found if v.value.username == username]
        for key in mine:
            await kv.purge(self.bus.kv.tokens, key)
        return len(mine)
