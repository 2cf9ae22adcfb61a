"""NATS adapter for the collector: publish batches of lines, read what is stored, keep cursors.

A batch goes to the LOGS stream as one message with a `Nats-Msg-Id`, so that
JetStream drops a copy published again after a failure; `publish` returns at
once with a future for the acknowledgement, leaving it to the caller how many
to keep in flight. The newest message stored on a task's subject is read back
directly (its Msg-Id names its last line), which lets a restarted collector
resume exactly even if its last cursor write was lost; `stored_ids` tells which
batches arrived when acks went missing. `trim` drops a task's oldest messages.
Cursors live in the log-cursors bucket, one key per container. Library errors
become `BusError`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors

from services.logs.batches import Batch
from services.logs.sequence import Position, parse_message_id
from shared import kv, names, streams
from shared.bus import Bus, BusError
from shared.models import LogCursor, decode_logs

log = logging.getLogger(__name__)

_ENVELOPE_BYTES = 2048  # headers and JSON fields around the text of a line


@dataclass(frozen=True, slots=True)
class Newest:
    """The newest message stored on a task's subject, written by this container."""

    position: Position  # its last line
    seq: int
    first_n: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The stream refused a message for good (e.g. too large): sending it again cannot help."""

    reason: str


def outcome(fut: asyncio.Future[Any]) -> int | Rejected | None:
    """The stream sequence an acknowledged publish got; Rejected; None while unknown or lost."""
    if not fut.done() or fut.cancelled():
        return None
    err = fut.exception()
    if err is None:
        return int(fut.result().seq)
    if isinstance(err, nats.js.errors.APIError) and err.code == 400:
        return Rejected(str(err))
    return None


def cancel(futures: list[asyncio.Future[Any]]) -> None:
    """Give up on acknowledgements (retrieving errors, so asyncio does not warn about them)."""
    for fut in futures:
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled():
            fut.exception()


class LogSink:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts, less room for the envelope."""
        return int(self.bus.nc.max_payload) - _ENVELOPE_BYTES

    @property
    def connection(self) -> int | None:
        """Which connection a publish goes out on now (None: none, it is buffered for the next).

        Batches published on a connection that has since dropped may be lost
        while later ones are stored: the caller must settle them first."""
        nc = self.bus.nc
        return int(nc.stats["reconnects"]) if nc.is_connected else None

    async def publish(self, subject: str, batch: Batch) -> asyncio.Future[Any]:
        """Send one batch; the future is its acknowledgement (see `outcome`)."""
        try:
            return await self.bus.js.publish_async(
                subject, batch.payload, headers={"Nats-Msg-Id": batch.msg_id}
            )
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise BusError(f"NATS: cannot publish lines: {type(err).__name__}: {err}") from err

    async def stored_ids(self, subject: str, after_seq: int, limit: int) -> dict[str, int]:
        """Msg-Id → sequence of (up to `limit`) messages stored on `subject` after `after_seq`."""
        found = await streams.read_from(
            self.bus.nc, names.STREAM_LOGS, subject, after_seq + 1, limit
        )
        return {m.headers.get("Nats-Msg-Id", ""): m.seq for m in found}

    async def trim(self, subject: str, before_seq: int) -> None:
        """Drop the messages of `subject` stored before sequence `before_seq`."""
        try:
            await self.bus.js.purge_stream(names.STREAM_LOGS, seq=before_seq, subject=subject)
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise BusError(f"NATS: cannot trim {subject}: {err}") from err

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
        msg = await streams.last_of_subject(self.bus.nc, names.STREAM_LOGS, subject)
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
