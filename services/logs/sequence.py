"""Docker log messages → numbered lines, each with a stable identity; resume skipping.

Every line the collector publishes (a `Unit`) is identified by its Docker
timestamp and its index among the units with that same timestamp (over-long
lines become several units; Docker also gives the pieces of a line it split at
16 KiB one timestamp). Reading a container's output again from `since=<the
cursor's timestamp>` therefore produces the same units with the same
identities and line numbers, and `Sequencer` skips those at or before the
cursor: nothing is lost or published twice.

Over-long lines are cut into pieces of at most `max_bytes` UTF-8 bytes (and at
most `max_encoded` bytes once JSON-escaped), never dropped; a piece that
continues on the next unit ends with " [continued]" and the next starts with
"[continued] ". A message without a newline (Docker's 16 KiB split) is treated
the same way when more output follows it.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

import msgspec

from services.logs import timestamps
from services.logs.frames import Frame, Stream

CONTINUED_SUFFIX = " [continued]"
CONTINUED_PREFIX = "[continued] "
_MAX_ESCAPE = 6  # the longest JSON escape of one character (\u001f) ...
_MAX_UTF8 = 4  # ... and the longest UTF-8 encoding of one
_RECENT_TIMESTAMPS = 64

_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Position:
    """A published unit: where a container's output has been published up to."""

    timestamp: str
    index: int
    line_no: int

    def key(self) -> tuple[int, int, int]:
        return (*timestamps.parse(self.timestamp), self.index)


class Unit(msgspec.Struct, frozen=True, gc=False):  # made once per line: must be cheap
    """One line to publish."""

    timestamp: str
    index: int
    n: int
    stream: Stream
    text: str

    @property
    def position(self) -> Position:
        return Position(self.timestamp, self.index, self.n)


def later(a: Position | None, b: Position | None) -> Position | None:
    """The position further along (None counts as 'nothing published')."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b.key() > a.key() else a


def parse_message_id(msg_id: str, container_id: str) -> tuple[str, int, int] | None:
    """(timestamp, index, lines) of a Nats-Msg-Id built by `names.log_message_id`.

    The timestamp and index are those of the message's last line; None if the
    id is not one of this container's."""
    prefix, sep, rest = msg_id.partition(":")
    if not sep or not prefix or prefix != container_id[: len(prefix)]:
        return None
    head, sep, last = rest.rpartition(":")
    if not sep or not last.isdigit():
        return None
    if timestamps.is_timestamp(head):
        return head, int(last), 1  # one line (also the format before batches)
    ts, sep, index = head.rpartition(":")
    if not sep or not index.isdigit() or not timestamps.is_timestamp(ts) or int(last) < 1:
        return None
    return ts, int(index), int(last)


def json_size(text: str) -> int:
    """Bytes `text` takes inside a JSON string (without the quotes)."""
    return len(_json.encode(text)) - 2


def split_text(text: str, max_bytes: int, max_encoded: int) -> list[str]:
    """Cut a line into pieces that fit both limits, at character boundaries; never drops text."""
    if len(text) * _MAX_ESCAPE <= min(max_bytes, max_encoded):
        return [text]
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes and json_size(text) <= max_encoded:
        return [text]
    pieces: list[str] = []
    pos = 0
    while pos < len(text):
        window = text[pos : pos + max_bytes]
        fit = len(window.encode("utf-8", "replace")[:max_bytes].decode("utf-8", "ignore"))
        piece = window[: max(1, fit)]
        size = json_size(piece)
        while size > max_encoded and len(piece) > 1:
            piece = piece[: max(1, len(piece) * max_encoded // size - 1)]
            size = json_size(piece)
        pieces.append(piece)
        pos += len(piece)
    return pieces


class Sequencer:
    """Turns the frames of one read of a container's log into units, skipping published ones.

    A read must start at `since=<after.timestamp>` (or at the beginning when
    `after` is None). A last frame without a newline is held back until more
    output or the end of the read decides whether it continues.
    """

    def __init__(self, after: Position | None, *, max_bytes: int, max_encoded: int) -> None:
        self.max_bytes = max_bytes
        self.max_encoded = max_encoded
        self._fits_whole = min(max_bytes, max_encoded)  # split_text's test for "no cutting"
        self._after = after
        self._after_key = after.key() if after is not None else None
        self._next_n = after.line_no + 1 if after is not None else 1
        self._counts: dict[str, int] = {}
        self._open: dict[Stream, bool] = {"stdout": False, "stderr": False}
        self._held: Frame | None = None
        self._last_ts = after.timestamp if after is not None else timestamps.EPOCH
        self.skipped = 0

    @property
    def holding(self) -> bool:
        return self._held is not None

    def feed(self, frames: Sequence[Frame]) -> list[Unit]:
        todo = list(frames)
        if not todo:
            return []
        if self._held is not None:
            todo.insert(0, self._held)
            self._held = None
        if not todo[-1].payload.endswith(b"\n"):
            self._held = todo.pop()
        out: list[Unit] = []
        for frame in todo:
            self._frame(frame, True, out)
        return out

    def finish(self) -> list[Unit]:
        """The read ended: a held message is final (the container closed its output)."""
        out: list[Unit] = []
        if self._held is not None:
            held, self._held = self._held, None
            self._frame(held, False, out)
        return out

    # ------------------------------------------------------------ internals
    def _frame(self, frame: Frame, more_follows: bool, out: list[Unit]) -> None:
        ts, body = timestamps.split_message(frame.payload)
        if not ts:
            ts = self._last_ts
        self._last_ts = ts
        stream = frame.stream
        complete = body.endswith(b"\n")
        if complete and body.find(b"\n", 0, -1) < 0:
            # the common case: one whole line, short enough to need no cutting
            raw = body[:-2] if body.endswith(b"\r\n") else body[:-1]
            text = raw.decode("utf-8", "replace")
            if len(text) * _MAX_ESCAPE <= self._fits_whole:
                if self._open[stream]:
                    text = CONTINUED_PREFIX + text
                    self._open[stream] = False
                self._emit(ts, stream, text, out)
                return
        if complete:
            body = body[:-1]
        lines = body.split(b"\n")
        last = len(lines) - 1
        for k, raw in enumerate(lines):
            ends_line = k < last or complete
            if ends_line and raw.endswith(b"\r"):
                raw = raw[:-1]
            text = raw.decode("utf-8", "replace")
            pieces = split_text(text, self.max_bytes, self.max_encoded)
            for j, piece in enumerate(pieces):
                open_after = j < len(pieces) - 1 or (not ends_line and more_follows)
                line = piece
                if self._open[stream]:
                    line = CONTINUED_PREFIX + line
                if open_after:
                    line += CONTINUED_SUFFIX
                self._open[stream] = open_after
                self._emit(ts, stream, line, out)

    def _emit(self, ts: str, stream: Stream, line: str, out: list[Unit]) -> None:
        counts = self._counts
        index = counts.get(ts, -1) + 1
        counts[ts] = index
        if len(counts) > 2 * _RECENT_TIMESTAMPS:  # forget old stamps, in bulk
            self._counts = dict(islice(counts.items(), len(counts) - _RECENT_TIMESTAMPS, None))
        if self._after_key is not None:
            try:
                key = (*timestamps.parse(ts), index)
            except ValueError:
                key = (0, 0, index)
            if key <= self._after_key:
                self.skipped += 1
                return
            self._after_key = None  # past the cursor: everything from here on is new
        out.append(Unit(ts, index, self._next_n, stream, line))
        self._next_n += 1
