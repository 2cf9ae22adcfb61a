"""Lines in batches on a real nats-server of the module's own: exactly-once publishing and reading.

Publishing, recovery after lost acks, resuming after a crash with different
batch boundaries and reading "the last N lines". The pure parts are in
tests/unit/test_logs_batches.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from services.api.handlers_logs import newest_lines
from services.logs.batches import Batcher, encode_batch
from services.logs.frames import Frame
from services.logs.nats_sink import LogSink
from services.logs.pipeline import Pipeline
from services.logs.sequence import Position, Sequencer, later
from shared import bus as busmod
from shared import names
from shared.bus import Bus
from shared.models import LogBatch, LogEntry, LogLine, decode_logs, encode
from shared.settings import Settings
from tests.dockerlogs import reread_since
from tests.logunits import CID, stamp, unit


@pytest.fixture
async def bus(nats_settings: Settings) -> AsyncIterator[Bus]:
    b = await busmod.connect(nats_settings, name="test-logs-batches")
    await b.js.purge_stream(names.STREAM_LOGS)
    yield b
    await b.close()


async def stored_units(bus: Bus, subject: str) -> list[tuple[int, str]]:
    """(n, text) of every line stored on `subject`, in stream order."""
    msgs = await bus.streams.read_from(names.STREAM_LOGS, subject, 1, 100_000)
    out: list[tuple[int, str]] = []
    for m in msgs:
        batch = decode_logs(m.data)
        out += [(batch.n + i, e.line) for i, e in enumerate(batch.lines)]
    return out


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def test_pipeline_stores_every_line_once_in_order_and_trims(bus: Bus) -> None:
    subject = names.logs_subject("p", "s", "trim")
    pipe = Pipeline(LogSink(bus), subject, "test", _pause, keep_lines=50, window=4)
    pipe.resume(None, None)
    units = [unit(n) for n in range(1, 281)]
    for k in range(0, len(units), 7):
        (batch,) = encode_batch(units[k : k + 7], "trim", CID)
        await pipe.send(batch)
    await pipe.drain()
    assert pipe.acked == units[-1].position and pipe.stored_lines == 280
    await asyncio.sleep(0.2)  # the last purge runs in the background
    stored = await stored_units(bus, subject)
    assert [n for n, _ in stored] == list(range(stored[0][0], 281))
    assert 50 <= len(stored) <= 50 + pipe.slack + 7
    await pipe.close()


@pytest.mark.parametrize("how", ["its publish failed", "its connection dropped since"])
async def test_a_batch_that_may_be_lost_is_stored_before_the_next_is_sent(
    bus: Bus, how: str
) -> None:
    """Otherwise a lost batch sent again would land after later lines (a NATS restart)."""
    task = "failed" if how == "its publish failed" else "dropped"
    container = task + CID  # Msg-Ids of their own: purging the stream keeps the old ones
    subject = names.logs_subject("p", "s", task)
    sink = LogSink(bus)
    first, second = (
        encode_batch([unit(n) for n in range(k, k + 5)], task, container)[0] for k in (1, 6)
    )
    pipe = Pipeline(sink, subject, "test", _pause, keep_lines=1000)
    pipe.resume(None, None)
    pending = asyncio.get_running_loop().create_future()  # never stored, no ack coming
    if how == "its publish failed":
        pending.set_exception(TimeoutError())
        pipe._connection = sink.connection
    else:
        pipe._connection = -1  # an earlier connection
    pipe._inflight.append((first, pending))
    await pipe.send(second)
    await pipe.drain()
    stored = await stored_units(bus, subject)
    assert stored == [(n, f"line {n}") for n in range(1, 11)]  # in order, once each
    assert pipe.acked == second.last and pipe.stored_lines == 10
    await pipe.close()


async def test_unacknowledged_batches_are_sent_again_only_if_missing(
    bus: Bus, nats_settings: Settings
) -> None:
    # A duplicate window too short to help: only reading what is stored prevents copies.
    cfg = busmod.stream_configs(nats_settings)[1]
    await bus.js.update_stream(dataclasses.replace(cfg, duplicate_window=0.1))
    try:
        subject = names.logs_subject("p", "s", "doubt")
        sink = LogSink(bus)
        batches = [
            encode_batch([unit(n) for n in range(k, k + 5)], "doubt", CID)[0]
            for k in (1, 6, 11, 16)
        ]
        for b in (batches[0], batches[2]):  # these made it, but their acks were lost
            await (await sink.publish(subject, b))
        await asyncio.sleep(0.3)
        pipe = Pipeline(sink, subject, "test", _pause, keep_lines=1000)
        pipe.resume(None, None)
        lost = asyncio.get_running_loop().create_future()
        lost.cancel()
        pipe._inflight.extend((b, lost) for b in batches)
        await pipe.drain()
        stored = await stored_units(bus, subject)
        assert sorted(stored) == [(n, f"line {n}") for n in range(1, 21)]
        assert len(stored) == 20  # nothing twice
        assert pipe.acked == batches[-1].last and pipe.stored_lines == 20
        await pipe.close()
    finally:
        await bus.js.update_stream(cfg)


def container_output(count: int) -> list[Frame]:
    """What Docker gives: stamped messages, some sharing a timestamp, one over-long line."""
    frames: list[Frame] = []
    for i in range(1, count + 1):
        ts = stamp(i // 3)  # three lines per timestamp
        text = "z" * 300 if i == count // 2 else f"line {i}"
        frames.append(Frame("stdout" if i % 4 else "stderr", f"{ts} {text}\n".encode()))
    return frames


@pytest.mark.parametrize(
    ("crash_after", "first_size", "second_size"),
    [(0, 10, 10), (3, 10, 7), (5, 13, 64), (9, 4, 3), (7, 50, 1), (8, 50, 9)],
)
async def test_resume_after_a_crash_with_other_batch_boundaries_loses_and_repeats_nothing(
    bus: Bus, crash_after: int, first_size: int, second_size: int
) -> None:
    """A collector stored some batches (more were in flight) and died; the next one batches
    differently. It resumes after the newest line stored: every line once, in order."""
    task = f"crash{crash_after}"
    subject = names.logs_subject("p", "s", task)
    cid = f"{crash_after:02d}{first_size:02d}" + CID  # Msg-Ids are unique per container
    frames = container_output(400)
    sink = LogSink(bus)

    def sequencer(after: Position | None) -> Sequencer:
        return Sequencer(after, max_bytes=100, max_encoded=200)  # the long line is cut

    seq = sequencer(None)
    first = Batcher(task, cid, max_lines=first_size).add(seq.feed(frames))
    for batch in first[:crash_after]:
        await (await sink.publish(subject, batch))
    in_flight = [await sink.publish(subject, b) for b in first[crash_after : crash_after + 3]]
    if in_flight:
        await asyncio.wait(in_flight, timeout=5)  # whatever of these the server got, it stored

    newest = await sink.last_stored(subject, cid)
    cursor = first[crash_after - 1].last if crash_after else None  # an older cursor is fine
    position = later(cursor, newest.position if newest else None)
    pipe = Pipeline(sink, subject, "test", _pause, keep_lines=10_000)
    pipe.resume(newest, position)
    again = sequencer(position)
    batcher = Batcher(task, cid, max_lines=second_size)
    for batch in batcher.add(again.feed(reread_since(frames, position)) + again.finish()):
        await pipe.send(batch)
    for batch in batcher.flush():
        await pipe.send(batch)
    await pipe.drain()
    await pipe.close()

    full = sequencer(None)
    expected = [(u.n, u.text) for u in full.feed(frames) + full.finish()]
    assert len(expected) > 400  # the over-long line became several
    assert await stored_units(bus, subject) == expected


async def test_the_last_lines_are_exact_across_both_formats(bus: Bus) -> None:
    subject = names.logs_subject("p", "mixed", "t1")
    n = 1
    for _ in range(5):  # lines stored by a collector before batches
        old = LogLine(time=stamp(n), stream="stdout", line=f"l{n}", n=n, task="t1")
        await bus.js.publish(subject, encode(old))
        n += 1
    for size in (3, 50, 1, 1, 7, 200, 2, 300, 1):
        lines = [LogEntry(time=stamp(k), stream="stdout", line=f"l{k}") for k in range(n, n + size)]
        await bus.js.publish(subject, encode(LogBatch(task="t1", n=n, lines=lines)))
        other = LogBatch(task="t2", n=n, lines=lines[:1])  # another task in between
        await bus.js.publish(names.logs_subject("p", "mixed", "t2"), encode(other))
        n += size
    total = n - 1
    for want in (1, 2, 3, 5, 6, 8, 9, 58, 59, 60, 100, 400, total - 1, total, total + 1, 10_000):
        found, skip = await newest_lines(bus, subject, want)
        got = [e.line for _, batch in found for e in batch.lines][skip:]
        assert got == [f"l{k}" for k in range(max(1, total - want + 1), total + 1)], want
        assert skip < len(found[0][1].lines)
    # across the service's tasks, in stream order
    found, skip = await newest_lines(bus, names.logs_of_service("p", "mixed"), 4)
    got = [(b.task, e.line) for _, b in found for e in b.lines][skip:]
    assert got == [
        ("t1", f"l{total - 1}"),
        ("t2", f"l{total - 300}"),
        ("t1", f"l{total}"),
        ("t2", f"l{total}"),
    ]
