"""Unit tests of the logs api's pure parts: query checks, times, token subprotocol, outbox."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.api.errors import BadRequest
from services.api.handlers_logs import display_time, int_param
from services.api.tails import LineGaps, Outbox, token_from_protocols


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, 20), ("0", 0), ("7", 7), ("10000", 10000), ("007", 7)],
)
def test_int_param_accepts(raw: str | None, value: int) -> None:
    query = {} if raw is None else {"tail": raw}
    assert int_param(query, "tail", 20, 0, 10000) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-1", "tail must be between 0 and 10000, got -1"),
        ("10001", "tail must be between 0 and 10000, got 10001"),
        ("abc", "tail must be an integer between 0 and 10000, got 'abc'"),
        ("1.5", "must be an integer"),
        ("", "must be an integer"),
        (" 5", "must be an integer"),
        ("+5", "must be an integer"),
        ("1_000", "must be an integer"),
        ("9" * 5000, "must be an integer"),
        ("٣", "must be an integer"),  # a digit, but not an ASCII one
    ],
)
def test_int_param_rejects(raw: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace("+", r"\+")):
        int_param({"tail": raw}, "tail", 20, 0, 10000)


@pytest.mark.parametrize(
    ("ts", "shown"),
    [
        ("2026-11-25T03:58:20.593851506Z", "2026-11-25T03:58:20.593Z"),
        ("2026-11-25T03:58:20.5Z", "2026-11-25T03:58:20.500Z"),
        ("2026-11-25T04:58:20.000000000+01:00", "2026-11-25T03:58:20.000Z"),
        ("not a time", "not a time"),
    ],
)
def test_display_time(ts: str, shown: str) -> None:
    assert display_time(ts) == shown


def test_token_from_protocols() -> None:
    assert token_from_protocols("servicectl.v1, servicectl.token.sct_abc") == "sct_abc"
    assert token_from_protocols("servicectl.v1") is None
    assert token_from_protocols("") is None


async def test_outbox_counts_what_a_slow_client_misses() -> None:
    box = Outbox(max_messages=3, max_bytes=10_000)
    assert all(box.offer(f"m{i}") for i in range(3))
    assert not box.offer("m3") and not box.offer("m4")
    assert box.missed == 2
    assert await box.get() == "m0"
    # room for one: not enough for the notice and a line, so still missing
    assert not box.offer("m5")
    assert await box.get() == "m1"
    assert box.offer("m6")
    assert [await box.get() for _ in range(3)] == [
        "m2",
        json.dumps({"type": "missed", "count": 3}),
        "m6",
    ]
    assert box.total_missed == 3 and box.missed == 0 and len(box) == 0


async def test_outbox_bounds_bytes_but_always_takes_one() -> None:
    box = Outbox(max_messages=100, max_bytes=10)
    assert box.offer("x" * 50)  # bigger than the limit, but the box was empty
    assert not box.offer("y")
    assert await box.get() == "x" * 50
    await box.wait_empty()
    assert box.offer("z")


def test_line_gaps_count_what_a_slow_tail_never_read() -> None:

    gaps = LineGaps()
    assert [gaps.skipped("t1", n) for n in (5, 6, 7)] == [0, 0, 0]
    assert gaps.skipped("t1", 12) == 4  # 8-11 were gone before the tail read them
    assert gaps.skipped("t2", 40) == 0  # a task first seen mid-way: nothing known
    assert gaps.skipped("t2", 41) == 0
    assert gaps.skipped("", 0) == 0  # events carry no line numbers


def test_outbox_announces_noted_misses_with_the_next_message() -> None:
    box = Outbox(max_messages=100, max_bytes=10_000)
    box.note_missed(4)
    assert box.offer("line")
    first = asyncio.run(box.get())
    assert json.loads(first) == {"type": "missed", "count": 4}
    assert asyncio.run(box.get()) == "line"
