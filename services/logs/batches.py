"""Lines → LOGS messages: consecutive lines of one task, grouped and encoded once.

A `Batch` is what the collector publishes as one message (a `LogBatch`): at
most `LOG_BATCH_LINES` lines and `LOG_BATCH_BYTES` of payload, except that a
single line may take more on its own. Its `Nats-Msg-Id` names its last line
(Docker timestamp and index) and how many lines it holds. A batch is built once
and, when publishing it fails, sent again exactly as it was, so JetStream's
duplicate detection recognises the copy.

Pure: no I/O and no clock; the follower decides when a batch is cut short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.logs.sequence import Position, Unit
from shared import names
from shared.models import LOG_BATCH_BYTES, LOG_BATCH_LINES, LogBatch, LogEntry, encode

# JSON around one line's text and time: {"time":"","stream":"stdout","line":""},
LINE_ENVELOPE = 40
# JSON around the lines: {"task":"…","n":…,"lines":[]}
_BATCH_ENVELOPE = 64


@dataclass(frozen=True, slots=True)
class Batch:
    units: tuple[Unit, ...]
    payload: bytes
    msg_id: str

    @property
    def first_n(self) -> int:
        return self.units[0].n

    @property
    def last(self) -> Position:
        return self.units[-1].position

    def __len__(self) -> int:
        return len(self.units)


def estimate(unit: Unit) -> int:
    """Bytes a unit adds to a batch when its text needs no JSON escapes (the usual case)."""
    return len(unit.text) + len(unit.timestamp) + LINE_ENVELOPE


def encode_batch(
    units: Sequence[Unit], task: str, container_id: str, max_bytes: int = LOG_BATCH_BYTES
) -> list[Batch]:
    """`units` as one batch, or as several if the encoded payload is over `max_bytes`.

    Escapes and multi-byte characters make a payload larger than estimated;
    such a batch is cut in halves until each fits (one line always fits alone).
    """
    payload = encode(
        LogBatch(
            task=task,
            n=units[0].n,
            lines=[LogEntry(time=u.timestamp, stream=u.stream, line=u.text) for u in units],
        )
    )
    if len(payload) > max_bytes and len(units) > 1:
        half = len(units) // 2
        return encode_batch(units[:half], task, container_id, max_bytes) + encode_batch(
            units[half:], task, container_id, max_bytes
        )
    last = units[-1]
    msg_id = names.log_message_id(container_id, last.timestamp, last.index, len(units))
    return [Batch(tuple(units), payload, msg_id)]


class Batcher:
    """Collects one container's units; full batches come out at once, the rest on `flush`."""

    def __init__(
        self,
        task: str,
        container_id: str,
        *,
        max_lines: int = LOG_BATCH_LINES,
        max_bytes: int = LOG_BATCH_BYTES,
    ) -> None:
        self.task = task
        self.container_id = container_id
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._units: list[Unit] = []
        self._size = _BATCH_ENVELOPE + len(task)

    def __len__(self) -> int:
        """Units waiting for a batch."""
        return len(self._units)

    def add(self, units: Sequence[Unit]) -> list[Batch]:
        """Take units (in order); the batches that are full now."""
        out: list[Batch] = []
        held = self._units
        size = self._size
        for u in units:
            grow = estimate(u)
            if held and (len(held) >= self.max_lines or size + grow > self.max_bytes):
                out += self._cut()
                held = self._units
                size = self._size
            held.append(u)
            size += grow
        self._size = size
        return out

    def flush(self) -> list[Batch]:
        """Whatever is held, as batches (none if nothing is)."""
        return self._cut() if self._units else []

    def _cut(self) -> list[Batch]:
        units, self._units = self._units, []
        self._size = _BATCH_ENVELOPE + len(self.task)
        return encode_batch(units, self.task, self.container_id, self.max_bytes)
