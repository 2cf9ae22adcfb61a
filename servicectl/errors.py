"""The client's exceptions: every failure a caller can meet, each with a message for people.

`ApiError` carries the HTTP status and the server's `{"Error": ...}` message
unchanged; the common statuses have their own subclasses so that callers can
catch, for example, `NotFound` alone. No I/O here.
"""

from __future__ import annotations


class ServicectlError(Exception):
    """Base of every error the client raises; `str(err)` is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ServicectlError):
    """The API answered with an error status; `message` is its `Error` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadRequest(ApiError):
    """400 (or 413): the request broke a rule; the message names the field and the rule.

    The CLI exits 2 for these, as for its own argument errors: the input was wrong."""


class AuthenticationFailed(ApiError):
    """403: wrong login, or a missing, expired or revoked session token."""


class NotFound(ApiError):
    """404: no such service in the caller's project (or no such endpoint)."""


class AlreadyExists(ApiError):
    """405: a service of that name exists already (clfpy's MethodNotAllowed)."""


class Unavailable(ApiError):
    """503: a dependency of the API (message bus, registry) is down; try again."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    413: BadRequest,
    403: AuthenticationFailed,
    404: NotFound,
    405: AlreadyExists,
    503: Unavailable,
}


def api_error(status: int, message: str) -> ApiError:
    """The most specific `ApiError` subclass for an HTTP status."""
    return _BY_STATUS.get(status, ApiError)(status, message)


class ConnectionFailed(ServicectlError):
    """The API could not be reached, or the connection broke."""


class UnexpectedAnswer(ServicectlError):
    """The API answered something that is not what this client understands."""


class FollowUnavailable(ServicectlError):
    """The API has no websocket endpoint for following this (an older server)."""


class FeedEnded(ServicectlError):
    """The server ended a websocket feed on purpose (e.g. the service was deleted)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
