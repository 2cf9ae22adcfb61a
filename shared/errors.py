"""The platform's own errors for the message bus, raised by the NATS adapter (`shared.bus`).

Services catch these, never nats-py's exceptions: the adapter translates every
library error into one of them.
"""

from __future__ import annotations


class BusError(Exception):
    """NATS is unreachable or answered with an error: try again later."""


class Conflict(BusError):
    """A compare-and-set lost: the key changed (or exists) since it was read."""


class Missing(BusError):
    """The key does not exist."""


class TooManyResults(BusError):
    """The server refuses a multi-subject read this large (it caps them near 1024)."""
