"""Request bodies, decoded strictly: wrong types and unknown fields are 400s.

`read_body` enforces content type and size before decoding, so a huge or
non-JSON body is refused with a message that names the problem.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from aiohttp import web

from services.api.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class TokenRequest(Body, frozen=True, kw_only=True):
    username: str
    password: str
    project: str


class HealthCheckBody(Body, frozen=True, kw_only=True):
    """Fields left out keep their current value (PATCH) or take the default (create)."""

    rel_path: str | msgspec.UnsetType = msgspec.UNSET
    status_codes: str | msgspec.UnsetType = msgspec.UNSET
    interval: int | msgspec.UnsetType = msgspec.UNSET


class PatchServiceRequest(Body, frozen=True, kw_only=True):
    health_check: HealthCheckBody | None = None
    count: int | msgspec.UnsetType = msgspec.UNSET


class CreateServiceRequest(Body, frozen=True, kw_only=True):
    name: str
    health_check: HealthCheckBody | None = None


class EnvVarBody(Body, frozen=True, kw_only=True):
    name: str
    value: str


class ServiceDefinitionBody(Body, rename="kebab", frozen=True, kw_only=True):
    container_tag: str
    memory_reservation: int
    memory_limit: int
    container_port: int
    environment: list[EnvVarBody]


class RollbackRequest(Body, frozen=True, kw_only=True):
    revision: int | None = None


B = TypeVar("B", bound=Body)

_decoders: dict[type[Body], msgspec.json.Decoder[Body]] = {}


def decode_body(cls: type[B], data: bytes) -> B:
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        result: B = dec.decode(data)  # type: ignore[assignment]
    except msgspec.ValidationError as err:
        raise BadRequest(f"invalid request body: {err}") from None
    except msgspec.DecodeError as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None
    return result


async def read_at_most(request: web.Request, limit: int) -> bytes:
    """The body up to `limit` bytes, however many reads it arrives in (chunked or not)."""
    data = bytearray()
    while len(data) < limit:
        chunk = await request.content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def read_body(request: web.Request, cls: type[B], max_bytes: int) -> B:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {request.content_type or 'none'}"
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(
            f"request body is too large: {request.content_length} bytes, "
            f"at most {max_bytes} are accepted"
        )
    data = await read_at_most(request, max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"request body is too large: more than {max_bytes} bytes")
    if not data.strip():
        raise BadRequest("request body is empty; a JSON object is expected")
    return decode_body(cls, data)
