"""Who is asking, and which of their project's services they mean.

Every handler and websocket tail starts here: `principal` checks the session
token; `find_service` looks the named service up within the caller's project
only, so another project's service is a 404 exactly like a missing one.
"""

from __future__ import annotations

from aiohttp import web

from services.api import auth
from services.api.errors import NotFound
from services.api.keys import STORE
from shared.kv import Versioned
from shared.models import ServiceRecord
from shared.rules import RuleViolation, check_service_name


async def principal(request: web.Request) -> auth.Principal:
    return await auth.check_token(request.app[STORE], auth.token_from_headers(request))


def path_name(request: web.Request, project: str) -> str:
    name = request.match_info["name"]
    try:
        return check_service_name(project, name)
    except RuleViolation as err:
        # No such name can exist; clfpy expects 404 for unknown services.
        raise NotFound(f"no service named {name!r} ({err})") from None


def not_found(name: str, project: str) -> NotFound:
    return NotFound(f"no service named {name!r} in project {project!r}")


async def find_service(
    request: web.Request, who: auth.Principal, *, include_deleting: bool = True
) -> Versioned[ServiceRecord]:
    """The caller's service named in the path, read from NATS (for writes: with its revision)."""
    name = path_name(request, who.project)
    found = await request.app[STORE].get_service(who.project, name)
    if found is None or (found.value.deleting and not include_deleting):
        raise not_found(name, who.project)
    return found


def read_service(request: web.Request, who: auth.Principal) -> ServiceRecord:
    """The caller's service named in the path, from memory (for reads)."""
    name = path_name(request, who.project)
    record = request.app[STORE].read_service(who.project, name)
    if record is None:
        raise not_found(name, who.project)
    return record
