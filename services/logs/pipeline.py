"""One container's batches on their way to NATS: acks in flight, settled in order, trimmed.

`Pipeline.send` publishes a batch and returns while its acknowledgement is
outstanding (at most `WINDOW` batches in flight); acknowledgements are settled
in the order the batches were sent, and `acked` is the last line up to which
every batch is known to be stored: the only position a cursor may record.

When an acknowledgement does not come (NATS away, a timeout), every batch in
flight is in doubt. The pipeline then reads which of them the stream has (by
their Msg-Ids, after the last sequence it knows to be ours) and sends the others
again, unchanged, until all are stored: JetStream's duplicate window drops a
copy that raced with the read, and the read covers what the window no longer
would after a long outage. Lines are neither lost nor stored twice.

Retention: the stream keeps `max_msgs_per_subject` messages per task, which
is no line count. The pipeline remembers (sequence, line numbers) of the
batches it stored and purges the task's messages whose lines are all older
than its newest `keep_lines` lines, once there are at least `slack` such lines.

Orchestration of `LogSink` calls only; no Docker, no parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.logs.batches import Batch
from services.logs.nats_sink import LogSink, Newest
from services.logs.sequence import Position
from shared.bus import Ack, BusError, Refused, ack_outcome, cancel_acks, lost_ack

log = logging.getLogger(__name__)

WINDOW = 32  # batches in flight (each at most LOG_BATCH_BYTES)
ACK_TIMEOUT_S = 10.0
MAX_DELAY_S = 5.0


@dataclass(frozen=True, slots=True)
class Kept:
    """A stored batch, for trimming: where it is and which lines it holds."""

    seq: int
    first_n: int
    last_n: int


def trim_point(kept: deque[Kept], keep_from: int, slack: int) -> int:
    """How many of the oldest kept batches to purge so that line `keep_from` on stays.

    Only batches whose every line is older than `keep_from` go (and only when
    at least `slack` lines are that old, so purges are not too frequent). The
    purge removes everything stored before the first batch that stays.
    """
    if not kept or keep_from - kept[0].first_n < slack:
        return 0
    count = 0
    for k in kept:
        if k.last_n >= keep_from:
            break
        count += 1
    return count if count < len(kept) else len(kept) - 1


class Pipeline:
    def __init__(
        self,
        sink: LogSink,
        subject: str,
        name: str,
        pause: Callable[[float], Awaitable[None]],
        *,
        keep_lines: int,
        window: int = WINDOW,
    ) -> None:
        self.sink = sink
        self.subject = subject
        self.name = name  # for log messages
        self.pause = pause  # sleeps, or raises once the collector stops
        self.keep_lines = keep_lines
        self.slack = max(100, keep_lines // 10)
        self.window = window
        self.acked: Position | None = None
        self.acked_seq = 0  # the newest sequence known to hold one of our batches
        self.stored_lines = 0  # lines acknowledged by this pipeline
        self._inflight: deque[tuple[Batch, Ack]] = deque()
        self._connection: int | None = None  # the connection the batches in flight went out on
        self._kept: deque[Kept] = deque()
        self._trimming: asyncio.Task[None] | None = None

    def resume(self, newest: Newest | None, position: Position | None) -> None:
        """Start after `position`; `newest` (the task's newest stored batch) anchors trimming."""
        self.acked = position
        if newest is not None:
            self.acked_seq = newest.seq
            self._kept.append(Kept(newest.seq, newest.first_n, newest.position.line_no))

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def send(self, batch: Batch) -> None:
        """Publish a batch, waiting only if `window` batches are unacknowledged.

        Batches in flight that may be lost (their connection dropped since, or
        their publish failed) are stored first: a batch sent again after a later
        one was stored would put the task's lines out of order on the stream.
        """
        self.poll()
        if self._inflight and (
            self.sink.connection != self._connection or self._inflight[0][1].done()
        ):
            await self._recover()
        while len(self._inflight) >= self.window:
            await self._settle_first()
        self._connection = self.sink.connection
        try:
            fut = await self.sink.publish(self.subject, batch)
        except BusError as err:
            log.warning("%s: %s", self.name, err)
            fut = lost_ack()  # in doubt
            self._inflight.append((batch, fut))
            await self._recover()  # before anything later is sent: keeps the batches in order
            return
        self._inflight.append((batch, fut))

    def poll(self) -> None:
        """Settle the acknowledgements that are in, in order, without waiting."""
        while self._inflight:
            batch, fut = self._inflight[0]
            got = ack_outcome(fut)
            if got is None:
                return
            self._inflight.popleft()
            self._stored([(batch, got)])

    async def drain(self) -> None:
        """Wait until every batch sent is stored."""
        while self._inflight:
            await self._settle_first()

    async def close(self) -> None:
        """Stop trimming; what is in flight is left to the next start (it resumes exactly)."""
        cancel_acks([fut for _, fut in self._inflight])
        self._inflight.clear()
        if self._trimming is not None:
            self._trimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trimming

    # ------------------------------------------------------------ internals
    async def _settle_first(self) -> None:
        _, fut = self._inflight[0]
        if not fut.done():
            await asyncio.wait([fut], timeout=ACK_TIMEOUT_S)
        if ack_outcome(fut) is None:
            await self._recover()
        else:
            self.poll()

    async def _recover(self) -> None:
        """Some batch in flight was not acknowledged: make sure each is stored once."""
        batches = [b for b, _ in self._inflight]
        results: dict[int, int | Refused] = {}
        doubt: list[Batch] = []
        for i, (batch, fut) in enumerate(self._inflight):
            got = ack_outcome(fut)
            if got is None:
                doubt.append(batch)
            else:
                results[i] = got
        cancel_acks([fut for _, fut in self._inflight])
        self._inflight.clear()
        index = {b.msg_id: i for i, b in enumerate(batches)}
        delay = 0.2
        while doubt:
            log.warning(
                "%s: %d batches not acknowledged; checking what NATS stored in %.1fs",
                self.name,
                len(doubt),
                delay,
            )
            await self.pause(delay)
            delay = min(MAX_DELAY_S, delay * 2)
            try:
                stored = await self.sink.stored_ids(
                    self.subject, self.acked_seq, len(batches) + WINDOW
                )
            except BusError as err:
                log.warning("%s: %s", self.name, err)
                continue
            for b in doubt:
                if b.msg_id in stored:
                    results[index[b.msg_id]] = stored[b.msg_id]
            doubt = [b for b in doubt if b.msg_id not in stored]
            doubt = await self._resend(doubt, index, results)
        self._stored([(b, results[i]) for i, b in enumerate(batches)])

    async def _resend(
        self, todo: list[Batch], index: dict[str, int], results: dict[int, int | Refused]
    ) -> list[Batch]:
        """Send batches again, all acks in flight; those still in doubt."""
        futures: list[Ack] = []
        try:
            for b in todo:
                futures.append(await self.sink.publish(self.subject, b))
            if futures:
                await asyncio.wait(futures, timeout=ACK_TIMEOUT_S)
        except BusError as err:
            log.warning("%s: %s", self.name, err)
        left: list[Batch] = []
        for k, b in enumerate(todo):
            got = ack_outcome(futures[k]) if k < len(futures) else None
            if got is None:
                left.append(b)
            else:
                results[index[b.msg_id]] = got
        cancel_acks(futures)
        return left

    def _stored(self, settled: list[tuple[Batch, int | Refused]]) -> None:
        """Batches now known to be stored (or refused for good), in the order they were sent."""
        seqs: list[Kept] = []
        for batch, got in settled:
            if isinstance(got, Refused):
                log.error(
                    "%s: lines %d-%d dropped: the LOGS stream refused them: %s",
                    self.name,
                    batch.first_n,
                    batch.last.line_no,
                    got.reason,
                )
            else:
                seqs.append(Kept(got, batch.first_n, batch.last.line_no))
                self.acked_seq = max(self.acked_seq, got)
            self.acked = batch.last
            self.stored_lines += len(batch)
        self._kept.extend(sorted(seqs, key=lambda k: k.seq))
        self._maybe_trim()

    def _maybe_trim(self) -> None:
        if self._trimming is not None and not self._trimming.done():
            return
        if self.acked is None:
            return
        count = trim_point(self._kept, self.acked.line_no - self.keep_lines + 1, self.slack)
        if not count:
            return
        for _ in range(count):
            self._kept.popleft()
        self._trimming = asyncio.create_task(self._trim(self._kept[0].seq))

    async def _trim(self, before_seq: int) -> None:
        try:
            await self.sink.trim(self.subject, before_seq)
        except BusError as err:
            log.debug("%s: not trimmed yet: %s", self.name, err)  # the next trim covers it
