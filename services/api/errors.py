"""The api's error types and the middleware that turns every failure into JSON.

Every answer that is not a success is `{"Error": "<message>"}` with a 4xx
status for the caller's mistakes and 503 when a dependency is down. Unexpected
exceptions are logged with a traceback and answered 500 without one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.api.responses import json_response
from shared.bus import BusError
from shared.rules import RuleViolation

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    """Bad session token: clfpy treats 403 as 'token validation failed'."""

    status = 403


class NotFound(ApiError):
    status = 404


class AlreadyExists(ApiError):
    """clfpy maps 405 to MethodNotAllowedException for duplicate names."""

    status = 405


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class TooManyRequests(ApiError):
    status = 429


class Unavailable(ApiError):
    status = 503


def error_response(status: int, message: str) -> web.Response:
    return json_response({"Error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.message)
    except RuleViolation as err:
        return error_response(400, str(err))
    except BusError as err:
        log.warning("%s %s: %s", request.method, request.path, err)
        return error_response(503, "the platform's message bus is unavailable; try again shortly")
    except web.HTTPException as err:
        if err.status < 400:
            raise
        if err.status == 404:
            message = f"no such endpoint: {request.path}"
        elif err.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        elif err.status == 413:
            message = "request body is too large"
        else:
            message = err.reason or "request failed"
        resp = error_response(err.status, message)
        if "Allow" in err.headers:
            resp.headers["Allow"] = err.headers["Allow"]
        return resp
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error; the platform's logs have the details")
