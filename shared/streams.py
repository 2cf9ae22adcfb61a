"""Reading stored messages back from JetStream streams: part of the NATS adapter.

`StreamReader` (one per connection, reached as `Bus.streams`) answers "the
newest message of a subject", "N messages from a sequence on", "the newest
message of every subject matching a pattern", "the last N messages of a
subject" and "the newest messages that add up to a weight" (log lines, when
one message holds several). Streams must have `allow_direct`.

nats-py's `get_msg(direct=True)` does single reads and is used for them. It
cannot send batch reads (`batch`, `multi_last`, `max_bytes`), and only batch
replies carry `Nats-Num-Pending`, which the binary search for "the last N"
needs: those requests are written here against the direct-get API
(`$JS.API.DIRECT.GET.<stream>`). Their replies arrive on one wildcard inbox per
connection and are collected by a callback until the end-of-batch status: no
subscription or task per read or per message.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from shared import names
from shared.errors import BusError, TooManyResults

_TIMEOUT = 5.0
_MAX_BATCH = 1000
_NOT_FOUND = ("204", "404", "408")  # end of batch, no such message, request timed out


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


class _Read:
    """The replies to one direct-get request, until its end."""

    def __init__(self, many: bool) -> None:
        self.many = many
        self.msgs: list[StoredMsg] = []
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def add(self, msg: Msg) -> None:
        if self.done.done():
            return
        status = (msg.headers or {}).get("Status")
        if status is None:
            self.msgs.append(_stored(msg))
            if not self.many:
                self.done.set_result("")
        else:
            self.done.set_result(status)


class _Inbox:
    """One wildcard reply subscription of a connection, shared by all its batch reads."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self.reads: dict[str, _Read] = {}
        self._sub: asyncio.Future[Subscription] | None = None
        self._next = 0

    async def ready(self) -> None:
        if self._sub is None or (self._sub.done() and self._sub.exception() is not None):
            self._sub = asyncio.ensure_future(
                self.nc.subscribe(f"{self.prefix}.*", cb=self._on_msg, pending_msgs_limit=-1)
            )
        await asyncio.shield(self._sub)

    async def _on_msg(self, msg: Msg) -> None:
        read = self.reads.get(msg.subject[len(self.prefix) + 1 :])
        if read is not None:
            read.add(msg)

    def open(self, many: bool) -> tuple[str, _Read]:
        self._next += 1
        token = str(self._next)
        read = self.reads[token] = _Read(many)
        return f"{self.prefix}.{token}", read


def _stored_raw(raw: Any) -> StoredMsg:
    """A message nats-py's `get_msg` returned, in this module's shape."""
    h = dict(raw.headers or {})
    return StoredMsg(
        subject=str(raw.subject or h.get("Nats-Subject", "")),
        seq=int(raw.seq or h.get("Nats-Sequence", "0")),
        time=h.get("Nats-Time-Stamp", ""),
        data=raw.data or b"",
        num_pending=int(h.get("Nats-Num-Pending", "0")),
        headers=h,
    )


class StreamReader:
    """Reads of stored messages over one NATS connection."""

    def __init__(self, nc: NATS, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js
        self._inbox = _Inbox(nc)

    # ------------------------------------------------------------ requests
    async def _request_many(self, stream: str, body: dict[str, Any]) -> list[StoredMsg]:
        """Send one direct-get request; collect replies until end of batch or not found."""
        box = self._inbox
        many = "batch" in body or "multi_last" in body
        try:
            await box.ready()
            reply, read = box.open(many)
            try:
                await self._nc.publish(
                    names.direct_get_subject(stream), json.dumps(body).encode(), reply=reply
                )
                status = await asyncio.wait_for(read.done, _TIMEOUT)
            finally:
                box.reads.pop(reply[len(box.prefix) + 1 :], None)
        except TimeoutError as err:
            raise BusError(f"NATS: no answer from stream {stream}") from err
        except nats.errors.Error as err:
            raise BusError(f"NATS: {type(err).__name__}: {err}") from err
        if status == "" or status in _NOT_FOUND:
            return read.msgs
        if status == "413":
            raise TooManyResults(f"NATS: too many subjects in one read of {stream}")
        raise BusError(f"NATS: direct get on {stream} failed with status {status}")

    async def _next_with_pending(self, stream: str, subject: str, seq: int) -> StoredMsg | None:
        """The first message of `subject` from `seq` on, with its `num_pending`.

        A batch of one: only batch replies carry `Nats-Num-Pending`. The reply
        comes through the connection's shared reply inbox (`request`)."""
        body = {"seq": max(seq, 1), "next_by_subj": subject, "batch": 1}
        try:
            msg = await self._nc.request(
                names.direct_get_subject(stream), json.dumps(body).encode(), timeout=_TIMEOUT
            )
        except (nats.errors.Error, TimeoutError, OSError) as err:
            raise BusError(f"NATS: {type(err).__name__}: {err}") from err
        status = (msg.headers or {}).get("Status")
        if status is None:
            return _stored(msg)
        if status in _NOT_FOUND:
            return None
        raise BusError(f"NATS: direct get on {stream} failed with status {status}")

    # ------------------------------------------------------------ reads
    async def last_of_subject(self, stream: str, subject: str) -> StoredMsg | None:
        """The newest message stored on `subject` (no wildcards); None if there is none."""
        try:
            raw = await self._js.get_msg(stream, subject=subject, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        except (nats.errors.Error, TimeoutError, OSError) as err:
            raise BusError(f"NATS: {type(err).__name__}: {err}") from err
        return _stored_raw(raw)

    async def read_from(
        self, stream: str, subject: str, start_seq: int, count: int, max_bytes: int = 0
    ) -> list[StoredMsg]:
        """Up to `count` messages of `subject` (wildcards allowed) from `start_seq` on.

        With `max_bytes`, one request that the server ends once the messages it
        sent reach that size (at least one message): read on from the last one's
        sequence if its `num_pending` says there is more.
        """
        if count == 1:
            one = await self._next_with_pending(stream, subject, start_seq)
            return [one] if one is not None else []
        if max_bytes > 0:
            body = {"seq": max(start_seq, 1), "next_by_subj": subject, "batch": count}
            return await self._request_many(stream, {**body, "max_bytes": max_bytes})
        out: list[StoredMsg] = []
        seq = max(start_seq, 1)
        while len(out) < count:
            want = min(_MAX_BATCH, count - len(out))
            got = await self._request_many(
                stream, {"seq": seq, "next_by_subj": subject, "batch": want}
            )
            out.extend(got)
            if len(got) < want or not got or got[-1].num_pending == 0:
                break
            seq = got[-1].seq + 1
        return out

    async def newest_per_subject(self, stream: str, pattern: str) -> list[StoredMsg]:
        """The newest stored message of every subject matching `pattern`, in sequence order."""
        try:
            return await self._request_many(stream, {"multi_last": [pattern]})
        except TooManyResults:
            pass
        # More subjects than one request may return: read everything, keep the newest of each.
        newest: dict[str, StoredMsg] = {}
        seq = 1
        while True:
            got = await self._request_many(
                stream, {"seq": seq, "next_by_subj": pattern, "batch": _MAX_BATCH}
            )
            for msg in got:
                newest[msg.subject] = msg
            if not got or got[-1].num_pending == 0:
                break
            seq = got[-1].seq + 1
        return sorted(newest.values(), key=lambda m: m.seq)

    async def start_of_last(self, stream: str, pattern: str, n: int, hi: int = 0) -> int | None:
        """Sequence of the n-th newest message matching `pattern`; None if none is stored.

        A binary search on `Nats-Num-Pending` (how many matching messages follow
        one), which direct get reports for batch reads only. `hi`, if known, is the
        sequence of the newest matching message.
        """
        first = await self.read_from(stream, pattern, 1, 1)
        if not first:
            return None
        if first[0].num_pending + 1 <= n:
            return first[0].seq
        if not hi:
            hi = max(m.seq for m in await self.newest_per_subject(stream, pattern))
        lo, start = first[0].seq, hi
        while lo <= hi:
            mid = (lo + hi) // 2
            got = await self.read_from(stream, pattern, mid, 1)
            if not got:
                hi = mid - 1
            elif got[0].num_pending + 1 <= n:
                start, hi = got[0].seq, mid - 1
            else:
                lo = got[0].seq + 1
        return start

    async def last_n(self, stream: str, subject: str, n: int, hi: int = 0) -> list[StoredMsg]:
        """The last `n` stored messages of `subject` (wildcards allowed), oldest first."""
        if n <= 0:
            return []
        start = await self.start_of_last(stream, subject, n, hi)
        if start is None:
            return []
        return await self.read_from(stream, subject, start, n)

    async def last_by_weight(
        self,
        stream: str,
        pattern: str,
        total: int,
        weight: Callable[[StoredMsg], int],
        hi: int = 0,
    ) -> list[StoredMsg]:
        """The newest messages matching `pattern` whose weights add up to at least `total`.

        Oldest first, up to sequence `hi` (the newest matching message if 0); all
        of them if there is less. For messages that hold several items (log lines
        in batches): `weight` counts a message's items. Starts with the newest
        message and reaches further back, by the average weight seen so far, until
        there is enough; every message is read once.
        """
        if total <= 0:
            return []
        if not hi:
            newest = await self.newest_per_subject(stream, pattern)
            hi = max((m.seq for m in newest), default=0)
            if not hi:
                return []
        got: list[StoredMsg] = []
        weighed = 0
        k = 1
        while True:
            start = await self.start_of_last(stream, pattern, k, hi)
            end = got[0].seq if got else hi + 1
            if start is None or start >= end:
                break  # nothing older is stored
            older: list[StoredMsg] = []
            seq = start
            while seq < end:
                chunk = await self.read_from(stream, pattern, seq, min(_MAX_BATCH, max(k, 2)))
                older += [m for m in chunk if m.seq < end]
                if not chunk or chunk[-1].seq >= end - 1 or chunk[-1].num_pending == 0:
                    break
                seq = chunk[-1].seq + 1
            got = older + got
            weighed += sum(weight(m) for m in older)
            if weighed >= total:
                break
            # how many messages are likely to be enough, from the average so far
            k = max(2 * k, math.ceil(len(got) * total / max(weighed, 1) * 1.2))
        return got
