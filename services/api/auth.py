"""Session tokens: issue, check and revoke; and the `principal` of a request.

A token is an opaque random string; only its SHA-256 digest is stored, with the
user, the project and an expiry, in the tokens bucket (with a NATS TTL so
expired tokens disappear on their own). Any failure is a 403, as clfpy expects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from services.api import secrets
from services.api.errors import Unauthorized
from services.api.store import Store
from shared.clock import now
from shared.models import TokenRecord, UserRecord


@dataclass(frozen=True)
class Principal:
    username: str
    project: str
    token_digest: str
    expires_at: float


def token_from_headers(request: web.Request) -> str:
    """The token from X-Auth-Token or `Authorization: Bearer`; 403 if absent or malformed."""
    raw = request.headers.get("X-Auth-Token")
    if raw is None:
        auth = request.headers.get("Authorization")
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("Authorization header must be 'Bearer <token>'")
            raw = value.strip()
    if raw is None:
        raise Unauthorized("missing session token: send it in the X-Auth-Token header")
    return raw.strip()


async def check_token(store: Store, token: str) -> Principal:
    if not secrets.looks_like_token(token):
        raise Unauthorized("malformed session token")
    digest = secrets.digest(token)
    record = await store.get_token(digest)
    if record is None:
        raise Unauthorized("unknown or revoked session token")
    if record.expires_at <= now():
        raise Unauthorized("session token has expired; log in again")
    return Principal(record.username, record.project, digest, record.expires_at)


async def verify_user(user: UserRecord | None, password: str) -> bool:
    """Check a password without blocking the event loop; always spends the hash's time."""
    encoded = user.password_hash if user is not None else _DUMMY_HASH
    ok = await asyncio.to_thread(secrets.verify_password, password, encoded)
    return ok and user is not None


async def issue_token(store: Store, username: str, project: str, ttl_s: int) -> tuple[str, float]:
    token = secrets.new_token()
    issued = now()
    record = TokenRecord(
        username=username, project=project, issued_at=issued, expires_at=issued + ttl_s
    )
    await store.put_token(secrets.digest(token), record, ttl=float(ttl_s))
    return token, record.expires_at


_DUMMY_HASH = secrets.hash_password("not a real password", salt=b"0123456789abcdef")
