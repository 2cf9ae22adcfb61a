"""Unit tests of the log collector's pure parts: frames, timestamps, line splitting, resume."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from services.logs import timestamps
from services.logs.discovery import ContainerInfo, stale_cursors, target_of, to_follow
from services.logs.frames import Frame, FrameError, FrameParser
from services.logs.sequence import (
    CONTINUED_PREFIX,
    CONTINUED_SUFFIX,
    Position,
    Sequencer,
    Unit,
    later,
    parse_message_id,
    split_text,
)
from shared import names
from shared.models import LogCursor
from tests.dockerlogs import reread_since

TS = "2026-11-25T03:58:20.593851506Z"


def frame_bytes(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def msg(ts: str, text: str, newline: bool = True) -> bytes:
    return f"{ts} {text}".encode() + (b"\n" if newline else b"")


def stamp(i: int, nanos: int = 0) -> str:
    return f"2026-11-25T03:58:{i:02d}.{nanos:09d}Z"


# ------------------------------------------------------------------ frames
def test_frames_are_parsed_whatever_the_cuts() -> None:
    data = (
        frame_bytes(1, msg(TS, "one"))
        + frame_bytes(2, msg(TS, "two"))
        + frame_bytes(1, b"")
        + frame_bytes(1, msg(TS, "x" * 300, newline=False))
    )
    expected = [
        Frame("stdout", msg(TS, "one")),
        Frame("stderr", msg(TS, "two")),
        Frame("stdout", b""),
        Frame("stdout", msg(TS, "x" * 300, newline=False)),
    ]
    for size in (1, 3, 7, 8, 9, 50, len(data)):
        parser = FrameParser()
        got: list[Frame] = []
        for start in range(0, len(data), size):
            got += parser.feed(data[start : start + size])
        assert got == expected, size
        assert parser.pending == 0


def test_incomplete_frame_waits_and_is_dropped_at_flush() -> None:
    parser = FrameParser()
    data = frame_bytes(1, msg(TS, "hello"))
    assert parser.feed(data[:-1]) == []
    assert parser.pending == len(data) - 1
    assert parser.flush() == []
    assert parser.pending == 0


@pytest.mark.parametrize(
    "header",
    [b"\x03\x00\x00\x00\x00\x00\x00\x01", b"\x01\x00\x01\x00\x00\x00\x00\x01", b"2026-11-"],
)
def test_bad_headers_are_errors(header: bytes) -> None:
    with pytest.raises(FrameError):
        FrameParser().feed(header + b"xx")


def test_oversized_frame_is_an_error() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        FrameParser(max_frame=10).feed(frame_bytes(1, b"x" * 11))


def test_raw_tty_stream_is_split_into_lines() -> None:
    parser = FrameParser(multiplexed=False)
    assert parser.feed(msg(TS, "a") + msg(TS, "b")[:10]) == [Frame("stdout", msg(TS, "a"))]
    assert parser.feed(msg(TS, "b")[10:] + b"tail") == [Frame("stdout", msg(TS, "b"))]
    assert parser.flush() == [Frame("stdout", b"tail")]


# ------------------------------------------------------------------ timestamps
@pytest.mark.parametrize(
    ("ts", "key"),
    [
        ("1970-01-01T00:00:00Z", (0, 0)),
        ("1970-01-01T00:00:01.5Z", (1, 500_000_000)),
        ("2026-11-25T03:58:20.593851506Z", (1795579100, 593851506)),
        ("2026-11-25T04:58:20.593851506+01:00", (1795579100, 593851506)),
        ("2026-11-25T02:28:20.000000001-01:30", (1795579100, 1)),
    ],
)
def test_timestamps_parse_with_nanoseconds(ts: str, key: tuple[int, int]) -> None:
    assert timestamps.parse(ts) == key


def test_since_param_keeps_nanoseconds() -> None:
    assert timestamps.since_param(TS) == "1795579100.593851506"
    assert timestamps.since_param("1970-01-01T00:00:00Z") == "0.000000000"


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-11-25 03:58:20Z", "2026-11-25T03:58:20"])
def test_bad_timestamps(bad: str) -> None:
    with pytest.raises(ValueError):
        timestamps.parse(bad)


@pytest.mark.parametrize(
    ("payload", "ts", "rest"),
    [
        (msg(TS, "hello world"), TS, b"hello world\n"),
        (msg(TS, ""), TS, b"\n"),
        (TS.encode() + b"\n", TS, b"\n"),
        (TS.encode(), TS, b""),
        (b"no timestamp here\n", "", b"no timestamp here\n"),
        (b"\n", "", b"\n"),
    ],
)
def test_split_message(payload: bytes, ts: str, rest: bytes) -> None:
    assert timestamps.split_message(payload) == (ts, rest)


# ------------------------------------------------------------------ splitting long lines
def test_short_lines_are_not_split() -> None:
    assert split_text("hello", 10, 20) == ["hello"]
    assert split_text("", 10, 20) == [""]
    assert split_text("x" * 10, 10, 20) == ["x" * 10]


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1000,
        "é" * 777,  # two bytes each
        "€😀" * 300,  # three and four bytes
        "\x01" * 500,  # six bytes each once JSON-escaped
        'ab"\\\n\t' * 200,
        "x" * 99 + "😀" + "y" * 300,
    ],
)
def test_long_lines_are_cut_within_both_limits_and_lose_nothing(text: str) -> None:
    pieces = split_text(text, 100, 150)
    assert "".join(pieces) == text
    assert len(pieces) > 1
    for piece in pieces:
        assert piece
        assert len(piece.encode()) <= 100
        assert len(msgspec.json.encode(piece)) - 2 <= 150


# ------------------------------------------------------------------ sequencing
def seq(after: Position | None = None, max_bytes: int = 1000) -> Sequencer:
    return Sequencer(after, max_bytes=max_bytes, max_encoded=max_bytes + 100)


def out(kind: str, ts: str, text: str, newline: bool = True) -> Frame:
    return Frame(kind, msg(ts, text, newline))  # type: ignore[arg-type]


def test_lines_are_numbered_and_indexed_per_timestamp() -> None:
    s = seq()
    units = s.feed(
        [
            out("stdout", stamp(1), "a"),
            out("stderr", stamp(1), "b"),
            out("stdout", stamp(2), "c"),
            out("stdout", stamp(1), "late"),  # out of order: index continues for stamp(1)
        ]
    )
    assert [(u.timestamp, u.index, u.n, u.stream, u.text) for u in units] == [
        (stamp(1), 0, 1, "stdout", "a"),
        (stamp(1), 1, 2, "stderr", "b"),
        (stamp(2), 0, 3, "stdout", "c"),
        (stamp(1), 2, 4, "stdout", "late"),
    ]


def test_empty_lines_and_carriage_returns() -> None:
    units = seq().feed([out("stdout", stamp(1), ""), out("stdout", stamp(2), "dos\r")])
    assert [u.text for u in units] == ["", "dos"]


def test_over_long_line_gets_markers() -> None:
    units = seq(max_bytes=10).feed([out("stdout", stamp(1), "0123456789abcdefghij!")])
    assert [u.text for u in units] == [
        "0123456789" + CONTINUED_SUFFIX,
        CONTINUED_PREFIX + "abcdefghij" + CONTINUED_SUFFIX,
        CONTINUED_PREFIX + "!",
    ]
    assert [u.index for u in units] == [0, 1, 2]


def test_docker_partial_messages_are_marked_per_stream() -> None:
    s = seq()
    # Docker cut a long stdout line at 16 KiB; a stderr line came in between
    first = s.feed(
        [
            out("stdout", stamp(1), "part one", newline=False),
            out("stderr", stamp(1), "other"),
            out("stdout", stamp(1), "part two"),
        ]
    )
    assert [(u.stream, u.text) for u in first] == [
        ("stdout", "part one" + CONTINUED_SUFFIX),
        ("stderr", "other"),
        ("stdout", CONTINUED_PREFIX + "part two"),
    ]


def test_unterminated_last_message_waits_for_what_follows() -> None:
    s = seq()
    assert [u.text for u in s.feed([out("stdout", stamp(1), "a")])] == ["a"]
    assert s.feed([out("stdout", stamp(2), "no newline", newline=False)]) == []
    assert s.holding
    # more output follows: the held message was a partial one
    units = s.feed([out("stdout", stamp(2), "rest")])
    assert [u.text for u in units] == ["no newline" + CONTINUED_SUFFIX, CONTINUED_PREFIX + "rest"]
    # the container exits without a final newline: no marker, nothing lost
    assert s.feed([out("stdout", stamp(3), "bye", newline=False)]) == []
    assert [u.text for u in s.finish()] == ["bye"]


def frames_of_a_busy_container() -> list[Frame]:
    frames: list[Frame] = []
    for i in range(6):
        ts = stamp(10 + i // 3)  # three messages per timestamp
        frames.append(out("stdout" if i % 2 else "stderr", ts, f"line {i} " + "z" * (i * 7)))
    frames.append(out("stdout", stamp(20), "long " * 12, newline=False))
    frames.append(out("stdout", stamp(20), "end of long"))
    frames.append(out("stdout", stamp(21), "last"))
    return frames


def test_resuming_from_any_published_line_gives_exactly_the_rest() -> None:
    frames = frames_of_a_busy_container()
    s = seq(max_bytes=16)
    full = s.feed(frames) + s.finish()
    assert [u.n for u in full] == list(range(1, len(full) + 1))
    assert len({(u.timestamp, u.index) for u in full}) == len(full)
    for k in range(len(full) + 1):
        after = full[k - 1].position if k else None
        r = seq(after, max_bytes=16)
        # the re-read arrives in arbitrary pieces
        again = reread_since(frames, after)
        units: list[Unit] = []
        for a, b in itertools.pairwise([0, 1, 3, len(again)]):
            units += r.feed(again[a:b])
        units += r.finish()
        assert units == full[k:], k


def test_later_and_message_ids() -> None:
    a, b = Position(stamp(1), 3, 10), Position(stamp(1), 4, 11)
    assert later(a, b) == b and later(b, a) == b and later(None, a) == a and later(a, None) == a
    cid = "c0ffee" * 10
    mid = names.log_message_id(cid, TS, 7)  # one line: also the format before batches
    assert mid == f"{cid[:24]}:{TS}:7"
    assert parse_message_id(mid, cid) == (TS, 7, 1)
    batch = names.log_message_id(cid, TS, 7, 250)
    assert parse_message_id(batch, cid) == (TS, 7, 250)
    assert parse_message_id(batch, "d" * 64) is None
    assert parse_message_id(mid, "d" * 64) is None
    assert parse_message_id("garbage", cid) is None
    assert parse_message_id(f"{cid[:24]}:not-a-time:1", cid) is None
    assert parse_message_id(f"{cid[:24]}:not-a-time:1:5", cid) is None
    assert parse_message_id(f"{cid[:24]}:{TS}:x:5", cid) is None
    assert parse_message_id(f"{cid[:24]}:{TS}:3:0", cid) is None
    offset = "2026-11-25T04:58:20.593851506+01:00"
    assert parse_message_id(names.log_message_id(cid, offset, 2, 9), cid) == (offset, 2, 9)
    assert parse_message_id(names.log_message_id(cid, offset, 2), cid) == (offset, 2, 1)


# ------------------------------------------------------------------ discovery
LABELS = {
    names.LABEL_INSTANCE: "i1",
    names.LABEL_PROJECT: "proj",
    names.LABEL_SERVICE: "web",
    names.LABEL_TASK: "abc123",
}


def test_targets_need_our_instance_and_clean_names() -> None:
    t = target_of("c1", LABELS, "i1")
    assert t is not None and t.subject == names.logs_subject("proj", "web", "abc123")
    assert target_of("c1", LABELS, "other") is None
    for bad in ("", "a.b", "a*", "a b", ">"):
        assert target_of("c1", {**LABELS, names.LABEL_TASK: bad}, "i1") is None


def test_which_containers_are_followed() -> None:
    cs = [
        ContainerInfo("run", "running"),
        ContainerInfo("new", "created"),
        ContainerInfo("old-done", "exited"),
        ContainerInfo("old-open", "exited"),
        ContainerInfo("busy", "running"),
        ContainerInfo("restarted", "running"),
    ]
    picked = to_follow(cs, following={"busy"}, done={"old-done", "restarted"})
    assert [c.id for c in picked] == ["run", "old-open", "restarted"]


def test_cursor_garbage_collection_needs_two_rounds() -> None:
    now = 2_000_000_000.0
    fresh = LogCursor(timestamp="2033-05-18T03:33:00Z", index=0, line_no=1)
    ancient = LogCursor(timestamp="2001-01-01T00:00:00Z", index=0, line_no=1)
    cursors = {"here": fresh, "gone-seen": fresh, "gone-unseen": fresh, "gone-old": ancient}
    delete, strikes = stale_cursors(cursors, {"here"}, {"gone-seen"}, {}, now, 3600)
    assert delete == [] and strikes == {"gone-seen": 1, "gone-unseen": 1, "gone-old": 1}
    delete, strikes = stale_cursors(cursors, {"here"}, {"gone-seen"}, strikes, now, 3600)
    assert sorted(delete) == ["gone-old", "gone-seen"]
    assert strikes == {"gone-unseen": 2}  # maybe another host's container: kept
