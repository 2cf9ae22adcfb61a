"""servicectl's user-facing side: a typed client of the REST API and the `servicectl` CLI.

`servicectl.client.Client` speaks to the api only over HTTP and websockets; it
must never import the platform's services or touch NATS or Docker directly.
The CLI (`servicectl.cli`) is built on it.
"""

from servicectl.client import Client
from servicectl.errors import (
    AlreadyExists,
    ApiError,
    AuthenticationFailed,
    ConnectionFailed,
    FeedEnded,
    FollowUnavailable,
    NotFound,
    ServicectlError,
    UnexpectedAnswer,
)

__all__ = [
    "AlreadyExists",
    "ApiError",
    "AuthenticationFailed",
    "Client",
    "ConnectionFailed",
    "FeedEnded",
    "FollowUnavailable",
    "NotFound",
    "ServicectlError",
    "UnexpectedAnswer",
]
