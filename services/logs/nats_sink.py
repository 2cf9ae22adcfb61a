"""NATS adapter for the collector: publish lines with acks in flight, keep cursors.

Lines go to the LOGS stream with `Nats-Msg-Id` so that JetStream drops a copy
published again after a failure; a batch is sent with every ack outstanding
at once (`publish_async`) and succeeds only when all its acks came back.
Cursors live in the log-cursors bucket, one key per container. The newest line
stored on a task's subject is read back directly (its Msg-Id says where it came
from), which lets a restarted collector resume exactly even if its last cursor
write was lost. Library errors become `BusError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
import nats.errors
import nats.js.errors

from services.logs.sequence import Position, Unit, parse_message_id
from shared import kv, names
from shared.bus import Bus, BusError
from shared.models import LogCursor, LogLine, decode, encode

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0
_REQUEST_TIMEOUT_S = 5.0
_ENVELOPE_BYTES = 2048  # headers and JSON fields around the text of a line


class LogSink:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts, less room for the envelope."""
        return int(self.bus.nc.max_payload) - _ENVELOPE_BYTES

    async def publish(
        self, subject: str, container_id: str, task: str, units: Sequence[Unit]
    ) -> int:
        """Publish units in order with all acks in flight; the number the stream rejected.

        Raises BusError if any ack is missing: the caller publishes the whole
        batch again and JetStream drops the copies it already stored.
        """
        futures: list[asyncio.Future[Any]] = []
        try:
            for u in units:
                payload = encode(
                    LogLine(time=u.timestamp, stream=u.stream, line=u.text, n=u.n, task=task)
                )
                headers = {"Nats-Msg-Id": names.log_message_id(container_id, u.timestamp, u.index)}
                futures.append(await self.bus.js.publish_async(subject, payload, headers=headers))
            if futures:
                _, pending = await asyncio.wait(futures, timeout=ACK_TIMEOUT_S)
                if pending:
                    raise BusError(f"NATS did not acknowledge {len(pending)} of {len(units)} lines")
        except (TimeoutError, nats.errors.Error, OSError) as err:
            _cancel(futures)
            raise BusError(f"NATS: cannot publish lines: {type(err).__name__}: {err}") from err
        except BaseException:
            _cancel(futures)
            raise
        rejected = 0
        for u, fut in zip(units, futures, strict=True):
            problem = fut.exception()
            if problem is None:
                continue
            if isinstance(problem, nats.js.errors.APIError) and problem.code == 400:
                # The stream refuses this message for good (e.g. too large): retrying
                # would stall the container's log forever.
                log.error(
                    "%s: line %d dropped: the LOGS stream refused it: %s", subject, u.n, problem
                )
                rejected += 1
                continue
            _cancel(futures)
            raise BusError(f"NATS: line {u.n} of {subject} not stored: {problem}")
        return rejected

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
    async def last_stored(self, subject: str, container_id: str) -> Position | None:
        """Where the newest line stored on `subject` came from, if from this container."""
        body = json.dumps({"last_by_subj": subject}).encode()
        try:
            msg = await self.bus.nc.request(
                names.direct_get_subject(names.STREAM_LOGS), body, timeout=_REQUEST_TIMEOUT_S
            )
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise BusError(f"NATS: cannot read the last line of {subject}: {err}") from err
        headers = msg.headers or {}
        if headers.get("Status") is not None:
            return None  # 404: nothing stored on the subject
        found = parse_message_id(headers.get("Nats-Msg-Id", ""), container_id)
        if found is None:
            return None
        try:
            line = decode(LogLine, msg.data)
        except msgspec.DecodeError:
            return None
        return Position(found[0], found[1], line.n)


def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled():
            fut.exception()  # retrieved, so asyncio does not warn about it
