"""What Docker's log endpoint would answer, for tests of resuming a container's log."""

from __future__ import annotations

from services.logs import timestamps
from services.logs.frames import Frame
from services.logs.sequence import Position


def reread_since(frames: list[Frame], after: Position | None) -> list[Frame]:
    """What Docker returns for since=<after.timestamp> (inclusive)."""
    if after is None:
        return frames
    limit = timestamps.parse(after.timestamp)
    return [f for f in frames if timestamps.parse(timestamps.split_message(f.payload)[0]) >= limit]
