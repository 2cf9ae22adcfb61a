"""Docker's log timestamps: split them off a message, order them, turn them into `since=`.

Docker stamps every log message with RFC 3339 and nanoseconds
(`2026-11-25T10:00:00.123456789Z`). These functions keep nanosecond precision
(Python's datetime would cut it to microseconds), which the collector needs to
resume exactly where it stopped. Pure: no I/O.
"""

from __future__ import annotations

import calendar
import re

# Docker writes 9 fractional digits and "Z"; other offsets and precisions are accepted.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)
# a message that starts with a timestamp: then a space, or nothing but its newline
_STAMPED = re.compile(b"(" + _TIMESTAMP.pattern.encode() + rb")(?: |(?=\n?\Z))")
EPOCH = "1970-01-01T00:00:00.000000000Z"

TimeKey = tuple[int, int]


def parse(ts: str) -> TimeKey:
    """(seconds since the epoch, nanoseconds) of an RFC 3339 timestamp; ValueError if not one."""
    m = _TIMESTAMP.fullmatch(ts)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {ts!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    nanos = int((m.group(7) or "0").ljust(9, "0"))
    return seconds, nanos


def is_timestamp(ts: str) -> bool:
    return _TIMESTAMP.fullmatch(ts) is not None


def since_param(ts: str) -> str:
    """Docker's `since=` value for a timestamp: `<seconds>.<nanoseconds>`, inclusive."""
    seconds, nanos = parse(ts)
    return f"{seconds}.{nanos:09d}"


def seconds(ts: str) -> float:
    s, ns = parse(ts)
    return s + ns / 1e9


def split_message(payload: bytes) -> tuple[str, bytes]:
    """(timestamp, text) of one message `<timestamp> <text>`; ("", payload) if unstamped."""
    m = _STAMPED.match(payload)
    if m is None:
        return "", payload
    return m.group(1).decode("ascii"), payload[m.end() :]
