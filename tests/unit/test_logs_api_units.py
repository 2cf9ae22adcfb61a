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


async def test_outbox_waits_for_room_until_the_client_took_half() -> None:
    box = Outbox(max_messages=4, max_bytes=10_000)
    for i in range(4):
        await box.put(f"m{i}")
    blocked = asyncio.create_task(box.put("m4"))
    await asyncio.sleep(0.01)
    assert not blocked.done() and len(box) == 4
    assert await box.get() == "m0"  # three left: not yet half empty
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert await box.get() == "m1"
    await asyncio.wait_for(blocked, 1)
    assert [await box.get() for _ in range(3)] == ["m2", "m3", "m4"]
    await box.wait_empty()
    assert box.total_missed == 0


async def test_outbox_bounds_bytes_but_always_takes_one() -> None:
    box = Outbox(max_messages=100, max_bytes=10)
    await asyncio.wait_for(box.put("x" * 50), 1)  # bigger than the limit, but the box was empty
    blocked = asyncio.create_task(box.put("y"))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert await box.get() == "x" * 50
    await asyncio.wait_for(blocked, 1)
    assert await box.get() == "y"


async def test_outbox_announces_noted_misses_with_the_next_message() -> None:
    box = Outbox(max_messages=100, max_bytes=10_000)
    box.note_missed(4)
    box.note_missed(3)
    await box.put("line")
    assert json.loads(await box.get()) == {"type": "missed", "count": 7}
    assert await box.get() == "line"
    await box.put("next")
    assert await box.get() == "next"  # announced once
    assert box.total_missed == 7 and box.missed == 0


def test_line_gaps_count_what_a_slow_tail_never_read() -> None:

    gaps = LineGaps()
    assert [gaps.seen("t1", n, n) for n in (5, 6, 7)] == [0, 0, 0]
    assert gaps.seen("t1", 12, 12) == 4  # 8-11 were gone before the tail read them
    assert gaps.seen("t2", 40, 40) == 0  # a task first seen mid-way: nothing known
    assert gaps.seen("t2", 41, 41) == 0
    assert gaps.seen("", 0, 0) == 0  # events carry no line numbers


def test_line_gaps_of_batches() -> None:
    gaps = LineGaps()
    assert gaps.seen("t1", 1, 300) == 0
    assert gaps.seen("t1", 301, 450) == 0
    assert gaps.seen("t1", 1001, 1200) == 550  # 451-1000 were trimmed before the tail read them
    assert gaps.seen("t1", 900, 950) == 0  # never moves back (a batch stored late)
    assert gaps.seen("t1", 1201, 1201) == 0
