"""Following one container: read its log from the cursor, publish, advance the cursor.

A `Follower` resumes after the later of the container's cursor and the newest
line of its task stored on NATS, reads Docker's stream from that timestamp,
numbers and publishes the new lines in batches and writes the cursor once
their acks are in (at most every `CURSOR_EVERY_S` while lines flow; always at
the end). When the stream ends because the container stopped, it reads once
more without following (Docker may end a follow early) and marks the cursor
`done`. Docker or NATS going away only pauses it: it retries with backoff and
resumes from what was acknowledged.

Orchestration only: Docker and NATS are reached through `DockerSource` and
`LogSink`; what a line is and what to skip is decided by `sequence`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.logs.discovery import Target
from services.logs.docker_source import DockerSource, LogsUnreadable
from services.logs.frames import FrameError, FrameParser
from services.logs.nats_sink import LogSink
from services.logs.sequence import Position, Sequencer, Unit, later
from services.logs.timestamps import is_timestamp, since_param
from shared.bus import BusError
from shared.docker import DockerUnavailable
from shared.models import LogCursor

log = logging.getLogger(__name__)

BATCH = 512
CURSOR_EVERY_S = 0.5
IDLE_S = 0.5
MAX_DELAY_S = 5.0
_ENCODED_SLACK = 512  # room for JSON escapes beyond max_bytes; the stream allows +1024


class Stopped(Exception):
    """`stop` was set while waiting for NATS or Docker."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int

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
        self.position: Position | None = None  # last acknowledged line
        self.published = 0
        self._saved: tuple[Position | None, bool] | None = None
        self._saved_at = 0.0

    @property
    def cid(self) -> str:
        return self.target.container_id

    async def run(self) -> bool:
        """Follow until the output is complete (True) or the container is gone or `stop`."""
        try:
            await self._resume()
            return await self._follow()
        except Stopped:
            return False
        finally:
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
        self.position = later(saved, stored)
        if cursor is not None:
            self._saved = (saved, cursor.done)
        if self.position is not None and not (cursor and cursor.done):
            log.info(
                "%s: resuming after line %d (%s)",
                self.target.short,
                self.position.line_no,
                self.position.timestamp,
            )

    async def _follow(self) -> bool:
        delay = 0.2
        while not self.stop.is_set():
            before = self.published
            try:
                tty = await self._read(follow=True)
                if self.published > before:
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
                await self._save_until_done()
                log.info(
                    "%s: complete after %d lines",
                    self.target.short,
                    self.position.line_no if self.position else 0,
                )
                return True
            except LogsUnreadable as err:
                log.warning("%s: not collected: %s", self.target.short, err)
                await self._save_until_done()
                return True
            except (DockerUnavailable, FrameError) as err:
                log.warning("%s: %s; retrying in %.1fs", self.target.short, err, delay)
                await self._pause(delay)
                delay = min(MAX_DELAY_S, delay * 2)
        return False

    async def _read(self, *, follow: bool, tty: bool | None = None) -> bool:
        """One read of the log from the position on; returns whether the container has a TTY."""
        if tty is None:
            state = await self.source.state(self.cid)
            tty = bool(state and state.tty)
        parser = FrameParser(multiplexed=not tty)
        seq = Sequencer(
            self.position, max_bytes=self.limits.max_bytes, max_encoded=self.limits.max_encoded
        )
        since = since_param(self.position.timestamp) if self.position else None
        stream = self.source.logs(self.cid, since=since, follow=follow, idle=IDLE_S)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if chunk:
                    await self._publish(seq.feed(parser.feed(chunk)))
                await self._save(done=False)
                if self.stop.is_set():
                    return tty
        await self._publish(seq.feed(parser.flush()) + seq.finish())
        await self._save(done=False)
        return tty

    async def _publish(self, units: Sequence[Unit]) -> None:
        for start in range(0, len(units), BATCH):
            batch = units[start : start + BATCH]
            todo = batch
            delay = 0.2
            while todo:
                try:
                    await self.sink.publish(self.target.subject, self.cid, self.target.task, todo)
                    break
                except BusError as err:
                    log.warning("%s: %s; retrying in %.1fs", self.target.short, err, delay)
                    await self._pause(delay)
                    delay = min(MAX_DELAY_S, delay * 2)
                todo = await self._unstored(todo)
            self.position = batch[-1].position
            self.published += len(batch)

    async def _unstored(self, batch: Sequence[Unit]) -> Sequence[Unit]:
        """The part of a failed batch that NATS did not store.

        Messages of one connection are stored in order, so what is stored is a
        prefix ending at the newest line on the subject. Sending only the rest
        keeps lines single even after JetStream's duplicate window has passed.
        """
        try:
            stored = await self.sink.last_stored(self.target.subject, self.cid)
        except BusError:
            return batch  # JetStream's duplicate window still covers a quick retry
        if stored is None:
            return batch
        key = stored.key()
        return [u for u in batch if u.position.key() > key]

    async def _save(self, *, done: bool, force: bool = False) -> None:
        """Write the cursor if it moved (at most every CURSOR_EVERY_S unless forced)."""
        state = (self.position, done)
        if state == self._saved or self.position is None:
            return
        now = time.monotonic()
        if not force and not done and now - self._saved_at < CURSOR_EVERY_S:
            return
        p = self.position
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
            self.position = Position("1970-01-01T00:00:00Z", -1, 0)
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
