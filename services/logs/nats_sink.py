"""The collector's side of the bus: publish batches of lines, read what is stored, keep cursors.

A batch goes to the LOGS stream as one message with a `Nats-Msg-Id`, so that
JetStream drops a copy published again after a failure; `publish` returns at
once with a future for the acknowledgement, leaving it to the caller how many
to keep in flight. The newest message stored on a task's subject is read back
directly (its Msg-Id names its last line), which lets a restarted collector
resume exactly even if its last cursor write was lost; `stored_ids` tells which
batches arrived when acks went missing. `trim` drops a task's oldest messages.
Cursors live in the log-cursors bucket, one key per container. Library errors
become `BusError` in the bus adapter (`shared.bus`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec

from services.logs.batches import Batch
from services.logs.sequence import Position, parse_message_id
from shared import kv, names
from shared.bus import Ack, Bus
from shared.models import LogCursor, decode_logs

log = logging.getLogger(__name__)

_ENVELOPE_BYTES = 2048  # headers and JSON fields around the text of a line


@dataclass(frozen=True, slots=True)
class Newest:
    """The newest message stored on a task's subject, written by this container."""

    position: Position  # its last line
    seq: int
    first_n: int


class LogSink:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts, less room for the envelope."""
        return self.bus.max_payload - _ENVELOPE_BYTES

    @property
    def connection(self) -> int | None:
        """Which connection a publish goes out on now (None: none, it is buffered for the next).

        Batches published on a connection that has since dropped may be lost
        while later ones are stored: the caller must settle them first."""
        return self.bus.connection

    async def publish(self, subject: str, batch: Batch) -> Ack:
        """Send one batch; the future is its acknowledgement (see `shared.bus.ack_outcome`)."""
        return await self.bus.publish_async(subject, batch.payload, msg_id=batch.msg_id)

    async def stored_ids(self, subject: str, after_seq: int, limit: int) -> dict[str, int]:
        """Msg-Id → sequence of (up to `limit`) messages stored on `subject` after `after_seq`."""
        found = await self.bus.streams.read_from(names.STREAM_LOGS, subject, after_seq + 1, limit)
        return {m.headers.get("Nats-Msg-Id", ""): m.seq for m in found}

    async def trim(self, subject: str, before_seq: int) -> None:
        """Drop the messages of `subject` stored before sequence `before_seq`."""
        await self.bus.purge(names.STREAM_LOGS, subject=subject, before_seq=before_seq)

    # ------------------------------------------------------------ cursors
    async def get_cursor(self, container_id: str) -> LogCursor | None:
        found = await kv.get(self.bus.kv.log_cursors, names.log_cursor_key(container_id), LogCursor)
        return found.value if found else None

    async def put_cursor(self, container_id: str, cursor: LogCursor) -> None:
        await kv.put(self.bus.kv.log_cursors, names.log_cursor_key(container_id), cursor)

    async def delete_cursor(self, key: str) -> None:
        await kv.purge(self.bus.kv.log_cursors, key)

    async def cursors(self) -> dict[str, LogCursor]:
        found = await kv.scan(self.bus.kv.log_cursors, ">", LogCursor)
        return {v.key: v.value for v in found}

    # ------------------------------------------------------------ stored lines
    async def last_stored(self, subject: str, container_id: str) -> Newest | None:
        """The newest message stored on `subject`, if this container wrote it."""
        msg = await self.bus.streams.last_of_subject(names.STREAM_LOGS, subject)
        if msg is None:
            return None  # nothing stored on the subject
        found = parse_message_id(msg.headers.get("Nats-Msg-Id", ""), container_id)
        if found is None:
            return None
        try:
            batch = decode_logs(msg.data)
        except msgspec.DecodeError:
            return None
        if not batch.lines:
            return None
        return Newest(Position(found[0], found[1], batch.last_n), msg.seq, batch.n)
