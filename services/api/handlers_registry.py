"""The registry's token endpoint, the `view=docker` credentials, and image clean-up.

`GET /auth/registry` speaks the Docker token protocol to dockerd: HTTP Basic
credentials, repeated `scope` parameters, the intersection of what is asked and
what the credential may do, RFC 3339 `issued_at`, never a refresh token, 401 in
the registry's error format for bad credentials.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from services.api import auth, registry_creds
from services.api.deletion import CleanupPending
from services.api.errors import Unavailable
from services.api.keys import DELETER, REGISTRY, SETTINGS, SIGNER, STORE
from services.api.registry_client import RegistryClient, RegistryUnavailable
from services.api.registry_tokens import TOKEN_LIFETIME_S, TokenSigner, grant, parse_scopes
from services.api.responses import json_response
from shared import names
from shared.clock import iso
from shared.models import ServiceRecord


def _unauthorized(message: str) -> web.Response:
    return json_response(
        {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]},
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="servicectl registry"'},
    )


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


async def token_endpoint(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    creds = _basic(request)
    if creds is None:
        return _unauthorized("HTTP Basic credentials are required")
    identity = await registry_creds.authenticate(request.app[STORE], settings, *creds)
    if identity is None:
        return _unauthorized("invalid, expired or revoked registry credentials")
    requested = parse_scopes(request.query.getall("scope", []))
    granted = grant(requested, identity.allowed)
    now = int(time.time())
    token = request.app[SIGNER].sign(identity.subject, granted, now)
    return json_response(
        {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_S,
            "issued_at": iso(now),
        }
    )


async def docker_view(
    request: web.Request, who: auth.Principal, record: ServiceRecord
) -> web.Response:
    settings = request.app[SETTINGS]
    if record.deleting:
        raise Unavailable(f"service {record.name!r} is being deleted")
    try:
        await request.app[REGISTRY].ping()
    except RegistryUnavailable as err:
        raise Unavailable(f"the image registry is unavailable ({err}); try again shortly") from err
    issued = await registry_creds.issue(request.app[STORE], settings, record)
    return json_response(
        {
            "repo_uri": f"{settings.registry_addr}/"
            f"{names.image_repository(record.project, record.name)}",
            "proxy_endpoint": settings.registry_url,
            "user": issued.user,
            "password": issued.password,
            "expires_at": iso(issued.expires_at),
        }
    )


async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the token signer, a registry client, and the deletion hooks."""
    settings = app[SETTINGS]
    signer = TokenSigner.from_file(settings.token_key_path)
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(session, settings.registry_url, signer)
        app[SIGNER] = signer
        app[REGISTRY] = client
        store = app[STORE]

        async def revoke(record: ServiceRecord) -> None:
            await registry_creds.revoke_service(store, record)

        async def delete_images(record: ServiceRecord) -> None:
            try:
                await client.delete_repository(names.image_repository(record.project, record.name))
            except RegistryUnavailable as err:
                raise CleanupPending(f"cannot delete the images yet: {err}") from err

        deleter = app[DELETER]
        deleter.revocations.append(revoke)
        deleter.cleanups.append(delete_images)
        yield
