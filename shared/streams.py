"""Reading stored messages of one subject back from a JetStream stream.

nats-py has no "last N messages of a subject" call, so this adapter speaks the
direct-get API (`$JS.API.DIRECT.GET.<stream>`) itself: batch reads from a
sequence, newest message per subject (`multi_last`), and a binary search over
sequences using the per-subject `Nats-Num-Pending` count to find where the last
N messages of a subject begin. Streams must have `allow_direct`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from shared import names
from shared.bus import BusError

_TIMEOUT = 5.0
_MAX_BATCH = 1000


class TooManyResults(BusError):
    """The server refuses a multi-subject read this large (it caps them near 1024)."""


@dataclass(frozen=True)
class StoredMsg:
    subject: str
    seq: int
    time: str
    data: bytes
    num_pending: int  # messages on this subject stored after this one
    headers: dict[str, str]


def _stored(msg: Msg) -> StoredMsg:
    h = msg.headers or {}
    return StoredMsg(
        subject=h.get("Nats-Subject", ""),
        seq=int(h.get("Nats-Sequence", "0")),
        time=h.get("Nats-Time-Stamp", ""),
        data=msg.data,
        num_pending=int(h.get("Nats-Num-Pending", "0")),
        headers=dict(h),
    )


async def _request_many(nc: NATS, stream: str, body: dict[str, Any]) -> list[StoredMsg]:
    """Send one direct-get request and collect replies until end of batch or not found."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[StoredMsg] = []
    try:
        await nc.publish(names.direct_get_subject(stream), json.dumps(body).encode(), reply=inbox)
        while True:
            try:
                msg = await sub.next_msg(timeout=_TIMEOUT)
            except nats.errors.TimeoutError as err:
                raise BusError(f"NATS: no answer from stream {stream}") from err
            status = (msg.headers or {}).get("Status")
            if status is None:
                out.append(_stored(msg))
                if "batch" not in body and "multi_last" not in body:
                    return out
                continue
            if status in ("204", "404", "408"):
                return out
            if status == "413":
                raise TooManyResults(f"NATS: too many subjects in one read of {stream}")
            raise BusError(f"NATS: direct get on {stream} failed with status {status}")
    except (TimeoutError, nats.errors.Error) as err:
        if isinstance(err, BusError):
            raise
        raise BusError(f"NATS: {type(err).__name__}: {err}") from err
    finally:
        try:
            await sub.unsubscribe()
        except nats.errors.Error:
            pass


async def _request_one(nc: NATS, stream: str, body: dict[str, Any]) -> StoredMsg | None:
    """One message through the connection's shared reply inbox (no subscription of its own)."""
    try:
        msg = await nc.request(
            names.direct_get_subject(stream), json.dumps(body).encode(), timeout=_TIMEOUT
        )
    except (nats.errors.Error, TimeoutError) as err:
        raise BusError(f"NATS: {type(err).__name__}: {err}") from err
    status = (msg.headers or {}).get("Status")
    if status is None:
        return _stored(msg)
    if status in ("204", "404", "408"):
        return None
    raise BusError(f"NATS: direct get on {stream} failed with status {status}")


async def read_from(
    nc: NATS, stream: str, subject: str, start_seq: int, count: int
) -> list[StoredMsg]:
    """Up to `count` messages of `subject` (wildcards allowed) from `start_seq` on."""
    if count == 1:
        one = await _request_one(
            nc, stream, {"seq": max(start_seq, 1), "next_by_subj": subject, "batch": 1}
        )
        return [one] if one is not None else []
    out: list[StoredMsg] = []
    seq = max(start_seq, 1)
    while len(out) < count:
        want = min(_MAX_BATCH, count - len(out))
        got = await _request_many(nc, stream, {"seq": seq, "next_by_subj": subject, "batch": want})
        out.extend(got)
        if len(got) < want or not got or got[-1].num_pending == 0:
            break
        seq = got[-1].seq + 1
    return out


async def newest_per_subject(nc: NATS, stream: str, pattern: str) -> list[StoredMsg]:
    """The newest stored message of every subject matching `pattern`, in sequence order."""
    try:
        return await _request_many(nc, stream, {"multi_last": [pattern]})
    except TooManyResults:
        pass
    # More subjects than one request may return: read everything, keep the newest of each.
    newest: dict[str, StoredMsg] = {}
    seq = 1
    while True:
        got = await _request_many(
            nc, stream, {"seq": seq, "next_by_subj": pattern, "batch": _MAX_BATCH}
        )
        for msg in got:
            newest[msg.subject] = msg
        if not got or got[-1].num_pending == 0:
            break
        seq = got[-1].seq + 1
    return sorted(newest.values(), key=lambda m: m.seq)


async def start_of_last(nc: NATS, stream: str, pattern: str, n: int, hi: int = 0) -> int | None:
    """Sequence of the n-th newest message matching `pattern`; None if none is stored.

    A binary search on `Nats-Num-Pending` (how many matching messages follow
    one), which direct get reports for batch reads only. `hi`, if known, is the
    sequence of the newest matching message.
    """
    first = await read_from(nc, stream, pattern, 1, 1)
    if not first:
        return None
    if first[0].num_pending + 1 <= n:
        return first[0].seq
    if not hi:
        hi = max(m.seq for m in await newest_per_subject(nc, stream, pattern))
    lo, start = first[0].seq, hi
    while lo <= hi:
        mid = (lo + hi) // 2
        got = await read_from(nc, stream, pattern, mid, 1)
        if not got:
            hi = mid - 1
        elif got[0].num_pending + 1 <= n:
            start, hi = got[0].seq, mid - 1
        else:
            lo = got[0].seq + 1
    return start


async def last_n(nc: NATS, stream: str, subject: str, n: int, hi: int = 0) -> list[StoredMsg]:
    """The last `n` stored messages of `subject` (wildcards allowed), oldest first."""
    if n <= 0:
        return []
    start = await start_of_last(nc, stream, subject, n, hi)
    if start is None:
        return []
    return await read_from(nc, stream, subject, start, n)
