"""Lines in batches, the pure parts: grouping, message ids, trim points, both formats.

Publishing, recovery after lost acks, resuming after a crash and reading "the
last N lines" run against a real nats-server: tests/integration/test_log_pipeline.py.
"""

from __future__ import annotations

import itertools
from collections import deque

import msgspec
import pytest

from services.logs.batches import Batch, Batcher, encode_batch
from services.logs.pipeline import Kept, trim_point
from services.logs.sequence import parse_message_id
from shared.models import LogBatch, LogEntry, LogLine, decode_logs, encode
from tests.logunits import CID, lines_of, stamp, unit


# ------------------------------------------------------------------ batches (pure)
def test_batches_hold_consecutive_lines_within_both_limits() -> None:
    units = [unit(n, "x" * (n % 37)) for n in range(1, 400)]
    b = Batcher("task1", CID, max_lines=25, max_bytes=1500)
    out: list[Batch] = []
    for a, z in itertools.pairwise([0, 1, 7, 100, 101, 399]):
        out += b.add(units[a:z])
    assert len(b) > 0  # a partial batch waits for more lines or a flush
    out += b.flush()
    assert len(b) == 0 and b.flush() == []
    assert lines_of(out) == units
    for batch in out:
        assert 1 <= len(batch) <= 25 and len(batch.payload) <= 1500
        decoded = decode_logs(batch.payload)
        assert decoded.task == "task1" and decoded.n == batch.first_n
        assert [e.line for e in decoded.lines] == [u.text for u in batch.units]
        assert [(e.time, e.stream) for e in decoded.lines] == [
            (u.timestamp, u.stream) for u in batch.units
        ]
        assert decoded.last_n == batch.last.line_no
        last = batch.units[-1]
        assert parse_message_id(batch.msg_id, CID) == (last.timestamp, last.index, len(batch))


def test_escapes_cut_a_batch_until_it_fits() -> None:
    # \x01 takes six bytes once JSON-escaped: far more than the estimate
    units = [unit(n, "\x01" * 100) for n in range(1, 41)]
    out = encode_batch(units, "t", CID, max_bytes=3000)
    assert len(out) > 1 and lines_of(out) == units
    assert all(len(b.payload) <= 3000 for b in out)


def test_a_line_larger_than_a_batch_goes_alone() -> None:
    units = [unit(1), unit(2, "y" * 5000), unit(3)]
    b = Batcher("t", CID, max_bytes=1000)
    out = b.add(units) + b.flush()
    assert [len(x) for x in out] == [1, 1, 1] and lines_of(out) == units


def test_both_message_formats_decode_as_batches() -> None:
    old = LogLine(time=stamp(5), stream="stderr", line="old", n=5, task="t")
    assert decode_logs(encode(old)) == LogBatch(
        task="t", n=5, lines=[LogEntry(time=stamp(5), stream="stderr", line="old")]
    )
    new = LogBatch(task="t", n=6, lines=[LogEntry(time=stamp(6), stream="stdout", line="a")] * 3)
    assert decode_logs(encode(new)) == new and new.last_n == 8
    for bad in (b"{}", b"[]", b"not json", b'{"task":"t","n":1,"lines":[{"time":1}]}'):
        with pytest.raises(msgspec.DecodeError):
            decode_logs(bad)


@pytest.mark.parametrize(
    ("kept", "keep_from", "slack", "purged"),
    [
        ([], 100, 10, 0),
        ([(1, 1, 50), (2, 51, 100), (3, 101, 150)], 101, 10, 2),
        ([(1, 1, 50), (2, 51, 100), (3, 101, 150)], 100, 10, 1),  # line 100 is in batch 2
        ([(1, 1, 50), (2, 51, 100), (3, 101, 150)], 40, 10, 0),
        ([(1, 1, 50), (2, 51, 100), (3, 101, 150)], 101, 200, 0),  # not worth a purge yet
        ([(1, 1, 50), (2, 51, 100)], 500, 10, 1),  # the newest batch always stays
        ([(9, 1, 50), (12, 101, 150), (14, 51, 100)], 120, 10, 1),  # stored late: kept
    ],
)
def test_trim_points(
    kept: list[tuple[int, int, int]], keep_from: int, slack: int, purged: int
) -> None:
    assert trim_point(deque(Kept(*k) for k in kept), keep_from, slack) == purged


# ------------------------------------------------------------------ against a real NATS
