"""Following one container: read its log from where it was stored, batch, publish, keep a cursor.

A `Follower` resumes after the later of the container's cursor and the newest
line of its task stored on NATS, reads Docker's stream from that timestamp,
numbers the new lines and groups consecutive ones into batches. A batch goes
out when it is full (`LOG_BATCH_LINES` lines or `LOG_BATCH_BYTES`); one that is
not goes out at once if no other batch is waiting for its ack (a quiet
container's lines are not delayed), else when the output pauses or
`LINGER_S` after its first line: a busy container costs one message per few
hundred lines, and no line waits more than `LINGER_S`. Batches are published
with their acks in flight (`Pipeline`); the cursor records the last acknowledged line (at most every
`CURSOR_EVERY_S` while lines flow; always at the end). When the stream ends
because the container stopped, it reads once more without following (Docker
may end a follow early), waits until everything is stored and marks the cursor
`done`. Docker or NATS going away only pauses it: it retries with backoff and
resumes from what was acknowledged.

Orchestration only: Docker and NATS are reached through `DockerSource` and
`LogSink`; what a line is and what to skip is decided by `sequence`, how lines
are grouped by `batches`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.logs.batches import Batcher
from services.logs.discovery import Target
from services.logs.docker_source import DockerSource, LogsUnreadable
from services.logs.frames import FrameError, FrameParser
from services.logs.nats_sink import LogSink
from services.logs.pipeline import Pipeline
from services.logs.sequence import Position, Sequencer, Unit, later
from services.logs.timestamps import is_timestamp, since_param
from shared.bus import BusError
from shared.docker import DockerUnavailable
from shared.models import LogCursor

log = logging.getLogger(__name__)

LINGER_S = 0.005  # a batch not full goes out at the latest this long after its first line
CURSOR_EVERY_S = 0.5
IDLE_S = 0.5
MAX_DELAY_S = 5.0
_ENCODED_SLACK = 512  # room for JSON escapes beyond max_bytes


class Stopped(Exception):
    """`stop` was set while waiting for NATS or Docker."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # of one line's text before it is cut
    keep_lines: int = 10_000  # lines per task the LOGS stream must keep readable

    @property
    def max_encoded(self) -> int:
        return self.max_bytes + _ENCODED_SLACK


class Follower:
    def __init__(
        self,
        target: Target,
        source: DockerSource,
        sink: LogSink,
        limits: Limits,
        stop: asyncio.Event,
    ) -> None:
        self.target = target
        self.source = source
        self.sink = sink
        self.limits = limits
        self.stop = stop
        self.batcher = Batcher(target.task, target.container_id)
        self.pipeline = Pipeline(
            sink, target.subject, target.short, self._pause, keep_lines=limits.keep_lines
        )
        self.sent: Position | None = None  # the last line handed to the batcher
        self._held_since: float | None = None  # when the batcher's oldest held line came
        self._saved: tuple[Position | None, bool] | None = None
        self._saved_at = 0.0

    @property
    def cid(self) -> str:
        return self.target.container_id

    @property
    def position(self) -> Position | None:
        """The last line known to be stored (every line before it is too)."""
        return self.pipeline.acked

    @property
    def published(self) -> int:
        return self.pipeline.stored_lines

    async def run(self) -> bool:
        """Follow until the output is complete (True) or the container is gone or `stop`."""
        try:
            await self._resume()
            return await self._follow()
        except Stopped:
            return False
        finally:
            with contextlib.suppress(BusError, Stopped, TimeoutError):
                await asyncio.wait_for(self._flush_and_drain(), 2.0)
            await self.pipeline.close()
            if self.position is not None and (self._saved or (None,))[0] != self.position:
                with contextlib.suppress(BusError, Stopped, TimeoutError):
                    await asyncio.wait_for(self._save(done=False, force=True), 2.0)

    async def _resume(self) -> None:
        delay = 0.2
        while True:
            try:
                cursor = await self.sink.get_cursor(self.cid)
                stored = await self.sink.last_stored(self.target.subject, self.cid)
                break
            except BusError as err:
                log.warning("%s: %s; retrying in %.1fs", self.target.short, err, delay)
                await self._pause(delay)
                delay = min(MAX_DELAY_S, delay * 2)
        if cursor is not None and not is_timestamp(cursor.timestamp):
            log.warning("%s: ignoring a cursor without a valid timestamp", self.target.short)
            cursor = None
        saved = Position(cursor.timestamp, cursor.index, cursor.line_no) if cursor else None
        position = later(saved, stored.position if stored else None)
        self.pipeline.resume(stored, position)
        self.sent = position
        if cursor is not None:
            self._saved = (saved, cursor.done)
        if position is not None and not (cursor and cursor.done):
            log.info(
                "%s: resuming after line %d (%s)",
                self.target.short,
                position.line_no,
                position.timestamp,
            )

    async def _follow(self) -> bool:
        delay = 0.2
        while not self.stop.is_set():
            before = self.sent
            try:
                tty = await self._read(follow=True)
                if self.sent != before:
                    delay = 0.2
                if self.stop.is_set():
                    return False
                state = await self.source.state(self.cid)
                if state is None:
                    log.info("%s: container removed", self.target.short)
                    return False
                if state.live:
                    await self._pause(delay)  # the stream broke off (dockerd restart?)
                    delay = min(MAX_DELAY_S, delay * 2)
                    continue
                await self._read(follow=False, tty=tty)
                await self._flush_and_drain()
                await self._save_until_done()
                log.info(
                    "%s: complete after %d lines",
                    self.target.short,
                    self.position.line_no if self.position else 0,
                )
                return True
            except LogsUnreadable as err:
                log.warning("%s: not collected: %s", self.target.short, err)
                await self._flush_and_drain()
                await self._save_until_done()
                return True
            except (DockerUnavailable, FrameError) as err:
                log.warning("%s: %s; retrying in %.1fs", self.target.short, err, delay)
                await self._pause(delay)
                delay = min(MAX_DELAY_S, delay * 2)
        return False

    async def _read(self, *, follow: bool, tty: bool | None = None) -> bool:
        """One read of the log after `sent`; returns whether the container has a TTY.

        Lines still held or in flight when it ends stay with the batcher and
        the pipeline: the next read continues after them.
        """
        if tty is None:
            state = await self.source.state(self.cid)
            tty = bool(state and state.tty)
        parser = FrameParser(multiplexed=not tty)
        seq = Sequencer(
            self.sent, max_bytes=self.limits.max_bytes, max_encoded=self.limits.max_encoded
        )
        since = since_param(self.sent.timestamp) if self.sent else None
        stream = self.source.logs(self.cid, since=since, follow=follow, idle=self._idle)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if chunk:
                    await self._add(seq.feed(parser.feed(chunk)))
                self.pipeline.poll()
                if self._flush_due(chunk):
                    await self._flush()
                await self._save(done=False)
                if self.stop.is_set():
                    return tty
        await self._add(seq.feed(parser.flush()) + seq.finish())
        await self._flush()
        self.pipeline.poll()
        await self._save(done=False)
        return tty

    def _flush_due(self, chunk: bytes) -> bool:
        """Whether the lines held go out now: nothing else is on its way to NATS (a quiet
        container's line goes at once), the stream fell silent, or they waited LINGER_S."""
        held = self._held_since
        if held is None:
            return False
        if not chunk or not self.pipeline.in_flight:
            return True
        return time.monotonic() - held >= LINGER_S

    def _idle(self) -> float:
        """How long the log stream may be silent before the follower gets a turn."""
        if self._held_since is None:
            return IDLE_S
        return max(0.001, self._held_since + LINGER_S - time.monotonic())

    async def _add(self, units: Sequence[Unit]) -> None:
        if not units:
            return
        self.sent = units[-1].position
        if self._held_since is None:
            self._held_since = time.monotonic()
        for batch in self.batcher.add(units):
            await self.pipeline.send(batch)
        if not len(self.batcher):
            self._held_since = None

    async def _flush(self) -> None:
        self._held_since = None
        for batch in self.batcher.flush():
            await self.pipeline.send(batch)

    async def _flush_and_drain(self) -> None:
        await self._flush()
        await self.pipeline.drain()

    async def _save(self, *, done: bool, force: bool = False) -> None:
        """Write the cursor if it moved (at most every CURSOR_EVERY_S unless forced)."""
        position = self.position
        state = (position, done)
        if state == self._saved or position is None:
            return
        now = time.monotonic()
        if not force and not done and now - self._saved_at < CURSOR_EVERY_S:
            return
        p = position
        t = self.target
        cursor = LogCursor(
            timestamp=p.timestamp,
            index=p.index,
            line_no=p.line_no,
            done=done,
            project=t.project,
            service=t.service,
            task=t.task,
        )
        try:
            await self.sink.put_cursor(self.cid, cursor)
        except BusError as err:
            if done or force:
                raise
            log.debug("%s: cursor not saved yet: %s", t.short, err)
            return
        self._saved = state
        self._saved_at = now

    async def _save_until_done(self) -> None:
        if self.position is None:
            # no output at all: an empty cursor still tells the deployer we are done
            self.pipeline.acked = Position("1970-01-01T00:00:00Z", -1, 0)
        delay = 0.2
        while True:
            try:
                await self._save(done=True, force=True)
                return
            except BusError as err:
                log.warning("%s: %s; retrying in %.1fs", self.target.short, err, delay)
                await self._pause(delay)
                delay = min(MAX_DELAY_S, delay * 2)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return
        raise Stopped
