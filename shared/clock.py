"""Wall-clock helpers: one format for every timestamp the platform shows."""

from __future__ import annotations

import datetime as _dt
import time


def now() -> float:
    """Seconds since the epoch (wall clock)."""
    return time.time()


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-25T10:00:00.123Z."""
    dt = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_now() -> str:
    return iso(now())


def parse_iso(text: str) -> float:
    """Parse RFC 3339 (as written by `iso` or by Docker, nanoseconds allowed)."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    # Python keeps at most microseconds: cut longer fractions.
    if "." in t:
        head, _, rest = t.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        t = f"{head}.{digits[:6].ljust(6, '0')}{rest[i:]}"
    return _dt.datetime.fromisoformat(t).timestamp()
