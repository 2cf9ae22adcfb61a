"""The `view=logs` REST view: the last lines of a service's most recent log streams.

`GET /services/<name>?view=logs&tail=N&streams=M` answers the last N lines of
each of the M most recent log streams (a task's subject is its stream), newest
stream first, in the shape clfpy prints. A LOGS message holds a batch of
consecutive lines (`LogBatch`; older streams one `LogLine`), so "the last N
lines" is found by line count, not message count. The websocket tails live in
`tails`.

Reads NATS through the `Bus` only; must not import nats or touch Docker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from services.api import auth
from services.api.errors import BadRequest
from services.api.keys import BUS, LIMITS
from services.api.responses import json_response
from shared import names, streams
from shared.bus import Bus
from shared.clock import iso, parse_iso
from shared.models import LogBatch, LogEntry, ServiceRecord, decode_logs

TAIL_DEFAULT, TAIL_MAX = 20, 10_000
STREAMS_DEFAULT, STREAMS_MAX = 1, 100
LINES_MAX = 100_000  # tail * streams: bounds the size of one answer
_DOCKER_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{3})\d*Z")


# ------------------------------------------------------------------ pure helpers
def int_param(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,9}", raw):
        raise BadRequest(f"{name} must be an integer between {lo} and {hi}, got {raw[:40]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def display_time(ts: str) -> str:
    """A Docker timestamp (nanoseconds) in the platform's format (UTC, milliseconds)."""
    if len(ts) == 30 and ts[10] == "T" and ts[19] == "." and ts[29] == "Z":
        return ts[:23] + "Z"  # Docker's own format: the quick way
    m = _DOCKER_TIME.fullmatch(ts)
    if m is not None:
        return f"{m.group(1)}.{m.group(2)}Z"
    try:
        return iso(parse_iso(ts))
    except ValueError:
        return ts


def log_event(entry: LogEntry, n: int) -> dict[str, Any]:
    return {
        "time": display_time(entry.time),
        "message": entry.line,
        "stream": entry.stream,
        "n": n,
    }


class LogMessage(msgspec.Struct, frozen=True):
    """One line as a websocket tail sends it."""

    type: str
    task: str
    time: str
    message: str
    stream: str
    n: int
    seq: int = 0  # the stream sequence of the line's batch: resume a follow `after=<seq>:<n>`


_encode_message = msgspec.json.Encoder().encode


def websocket_messages(batch: LogBatch, seq: int = 0) -> list[str]:
    """The websocket tail's messages for a batch of lines, one JSON text per line."""
    task = batch.task
    return [
        _encode_message(
            LogMessage("log", task, display_time(e.time), e.line, e.stream, n, seq)
        ).decode()
        for n, e in enumerate(batch.lines, batch.n)
    ]


def decode_batch(msg: streams.StoredMsg) -> LogBatch | None:
    """The lines of a LOGS message (either format); None if it is not one."""
    try:
        return decode_logs(msg.data)
    except msgspec.DecodeError:
        return None


# ------------------------------------------------------------------ reading the streams
async def newest_lines(
    bus: Bus, pattern: str, count: int, hi: int = 0
) -> tuple[list[tuple[streams.StoredMsg, LogBatch]], int]:
    """The messages that hold the newest `count` lines of `pattern` (oldest first), and
    how many lines at the start of the first one are older than those."""
    batches: dict[int, LogBatch] = {}

    def weight(m: streams.StoredMsg) -> int:
        batch = decode_batch(m)
        if batch is None:
            return 0
        batches[m.seq] = batch
        return len(batch.lines)

    msgs = await bus.streams.last_by_weight(names.STREAM_LOGS, pattern, count, weight, hi)
    found = [(m, batches[m.seq]) for m in msgs if m.seq in batches]
    surplus = sum(len(b.lines) for _, b in found) - count
    start = 0
    while start < len(found) and surplus >= len(found[start][1].lines):
        surplus -= len(found[start][1].lines)
        start += 1
    return found[start:], max(0, surplus)


async def _last_lines(bus: Bus, newest: streams.StoredMsg, n: int) -> list[dict[str, Any]]:
    if n == 0:
        return []
    found, skip = await newest_lines(bus, newest.subject, n, newest.seq)
    events = []
    for _, batch in found:
        for i, entry in enumerate(batch.lines[skip:], start=skip):
            events.append(log_event(entry, batch.n + i))
        skip = 0
    return events


async def logs_view(
    request: web.Request, who: auth.Principal, record: ServiceRecord
) -> web.Response:
    tail = int_param(request.query, "tail", TAIL_DEFAULT, 0, TAIL_MAX)
    count = int_param(request.query, "streams", STREAMS_DEFAULT, 1, STREAMS_MAX)
    if tail * count > LINES_MAX:
        raise BadRequest(f"tail * streams must be at most {LINES_MAX}, got {tail} * {count}")
    bus = request.app[BUS]
    pattern = names.logs_of_service(record.project, record.name)
    async with request.app[LIMITS].log_read(who.project):
        newest = await bus.streams.newest_per_subject(names.STREAM_LOGS, pattern)
        chosen = sorted(newest, key=lambda m: m.seq, reverse=True)[:count]
        found = await asyncio.gather(*(_last_lines(bus, m, tail) for m in chosen))
    return json_response(
        {
            "logs": [
                {"stream_name": names.task_of_logs_subject(m.subject), "log_events": events}
                for m, events in zip(chosen, found, strict=True)
            ]
        }
    )
