"""Websocket tails of a service's logs and events.

`GET /services/<name>/logs/follow?tail=N` and `.../events/follow?tail=N` are
websockets: an optional backlog, then every new line (across task
replacements) or event as one JSON text message, read from the stream in order
by sequence. A LOGS message holds a batch of lines, which go out one message
each. A wake-up subscription on the subjects makes new messages go out at once;
a slow poll covers NATS restarts.

Every client has a bounded outbox, and its tail reads the stream only as fast
as the client takes messages: the stream is the buffer. A client that falls
further behind than the stream keeps lines is told how many it missed; it
never holds up NATS or other clients. A tail closes with a reason when the
service is deleted, the token expires or is revoked (4403/4404), or the api
shuts down (1001).

Reads NATS through the `Bus` and the `Store`; must not import nats or touch
Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from services.api import auth
from services.api.access import find_service, principal
from services.api.errors import BadRequest, Unauthorized
from services.api.handlers_logs import (
    TAIL_MAX,
    decode_batch,
    int_param,
    newest_lines,
    websocket_messages,
)
from services.api.keys import BUS, INDEX, LIMITS, SOCKETS, STORE, TOKENS, WAKEUPS
from shared import names
from shared.bus import Bus, BusError
from shared.clock import now
from shared.models import ServiceRecord
from shared.streams import StoredMsg

log = logging.getLogger(__name__)

FOLLOW_TAIL_DEFAULT = 0
OUTBOX_MESSAGES, OUTBOX_BYTES = 1000, 1024 * 1024
SUBPROTOCOL = "servicectl.v1"
TOKEN_SUBPROTOCOL = "servicectl.token."  # + the session token
CLOSE_FORBIDDEN, CLOSE_GONE = 4403, 4404
POLL_S = 1.0  # safety net: read even without a wake-up (e.g. just after a NATS restart)
CHECK_S = 5.0  # how often the token and the service are checked again
FINAL_S = 1.0  # after a deletion: time for the last lines and events to arrive
HEARTBEAT_S = 30.0
READ_MESSAGES, READ_BYTES = 500, 256 * 1024  # one read of the stream: whichever comes first


def token_from_protocols(header: str) -> str | None:
    for proto in header.split(","):
        proto = proto.strip()
        if proto.startswith(TOKEN_SUBPROTOCOL):
            return proto[len(TOKEN_SUBPROTOCOL) :]
    return None


class Outbox:
    """A client's bounded queue of text messages, with a count of what it missed.

    `put` waits while the outbox is full, until the client has taken half of
    it: the tail then reads on from the stream at the client's pace.
    """

    def __init__(self, max_messages: int = OUTBOX_MESSAGES, max_bytes: int = OUTBOX_BYTES):
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.missed = 0
        self.total_missed = 0
        self._items: deque[str] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._items)

    def _fits(self, count: int, size: int) -> bool:
        if not self._items:
            return True  # always room for something, however large
        return (
            len(self._items) + count <= self.max_messages and self._bytes + size <= self.max_bytes
        )

    def _push(self, text: str) -> None:
        self._items.append(text)
        self._bytes += len(text)
        self._ready.set()
        self._empty.clear()

    def note_missed(self, count: int) -> None:
        """Messages lost before they reached the outbox: announced with the next one."""
        self.missed += count
        self.total_missed += count

    async def put(self, text: str) -> None:
        """Queue a message, after a notice of what was missed; wait while there is no room."""
        while True:
            notice = json.dumps({"type": "missed", "count": self.missed}) if self.missed else ""
            if self._fits(2 if notice else 1, len(notice) + len(text)):
                break
            self._room.clear()
            await self._room.wait()
        if notice:
            self._push(notice)
            self.missed = 0
        self._push(text)

    async def get(self) -> str:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        text = self._items.popleft()
        self._bytes -= len(text)
        if not self._items:
            self._empty.set()
        if len(self._items) <= self.max_messages // 2 and self._bytes <= self.max_bytes // 2:
            self._room.set()
        return text

    async def wait_empty(self) -> None:
        await self._empty.wait()


# ------------------------------------------------------------------ websocket tails
@dataclass(frozen=True)
class Rendered:
    """The websocket messages of one stored message."""

    texts: list[str]
    task: str = ""  # for log lines: their task and first and last number, to notice gaps
    first: int = 0
    last: int = 0


@dataclass(frozen=True)
class TailSpec:
    stream: str
    pattern: str
    render: Callable[[StoredMsg], Rendered | None]
    lines: bool = False  # messages are batches of log lines (`tail` counts lines)


def _render_log(msg: StoredMsg) -> Rendered | None:
    batch = decode_batch(msg)
    if batch is None or not batch.lines:
        return None
    return Rendered(websocket_messages(batch, msg.seq), batch.task, batch.n, batch.last_n)


def _render_event(msg: StoredMsg) -> Rendered | None:
    text = msg.data.decode("utf-8", "replace").rstrip()
    if text.endswith("}") and len(text) > 2:
        # the stream sequence, to resume a follow after this event (`after=<seq>`)
        text = f'{text[:-1]},"seq":{msg.seq}}}'
    return Rendered([text])


def parse_after(raw: str | None, lines: bool) -> tuple[int, int] | None:
    """`after=<seq>` (events) or `after=<seq>:<n>` (logs): where a follow resumes."""
    if raw is None:
        return None
    seq_text, _, n_text = raw.partition(":")
    if not re.fullmatch(r"[0-9]{1,18}", seq_text) or (
        n_text and (not lines or not re.fullmatch(r"[0-9]{1,18}", n_text))
    ):
        shape = "<seq>:<n>" if lines else "<seq>"
        raise BadRequest(f"after must be {shape} from the last message received, got {raw[:40]!r}")
    return int(seq_text), int(n_text or 0)


class LineGaps:
    """Counts the lines of each task that a tail never got to read.

    A tail that falls further behind than the stream keeps lines per task finds
    the oldest ones gone; their line numbers tell how many."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def seen(self, task: str, first: int, last: int) -> int:
        """Lines `first`..`last` of `task` arrived: how many before them never did."""
        if not task or first <= 0:
            return 0
        before = self.last.get(task)
        if before is None or last > before:
            self.last[task] = last
        return first - before - 1 if before is not None and first > before + 1 else 0


async def _ws_principal(request: web.Request) -> auth.Principal:
    """Who asks: a token from a header, the `token` parameter or a subprotocol."""
    if "X-Auth-Token" in request.headers or "Authorization" in request.headers:
        return await principal(request)
    token = request.query.get("token") or token_from_protocols(
        request.headers.get("Sec-WebSocket-Protocol", "")
    )
    if not token:
        raise Unauthorized(
            "missing session token: send it in the X-Auth-Token header, as the 'token' query "
            f"parameter or as websocket subprotocol '{TOKEN_SUBPROTOCOL}<token>'"
        )
    return await auth.check_token(request.app[STORE], token)


class Tail:
    """One websocket client: pump (NATS to outbox), writer (outbox to client), guard."""

    def __init__(
        self,
        app: web.Application,
        ws: web.WebSocketResponse,
        spec: TailSpec,
        who: auth.Principal,
        record: ServiceRecord,
        start: int,
        skip: int = 0,
    ) -> None:
        self.app = app
        self.ws = ws
        self.spec = spec
        self.who = who
        self.record = record
        self.seq = self.start = start
        self.skip = skip  # lines of message `start` older than the backlog asked for
        self.outbox = Outbox()
        self.gaps = LineGaps()
        self.wake = asyncio.Event()
        self.gone = asyncio.Event()
        self.recheck = asyncio.Event()
        self.closing = False  # the server is closing the socket (the guard said so)

    async def pump(self) -> None:
        bus = self.app[BUS]
        spec = self.spec
        outbox = self.outbox
        live = False
        delay = POLL_S
        while True:
            self.wake.clear()
            try:
                got = await bus.streams.read_from(
                    spec.stream, spec.pattern, self.seq, READ_MESSAGES, READ_BYTES
                )
            except BusError as err:
                log.debug("tail of %s: %s", spec.pattern, err)
                await asyncio.sleep(0.5)
                continue
            for m in got:
                self.seq = m.seq + 1
                rendered = spec.render(m)
                if rendered is None:
                    continue
                texts, first = rendered.texts, rendered.first
                if self.skip:
                    if m.seq == self.start:
                        # negative: resume after line -skip of this batch (its numbers count)
                        drop = self.skip if self.skip > 0 else max(0, -self.skip - first + 1)
                        texts, first = texts[drop:], first + drop
                    self.skip = 0
                if rendered.task:
                    outbox.note_missed(self.gaps.seen(rendered.task, first, rendered.last))
                for text in texts:
                    await outbox.put(text)
            if got and got[-1].num_pending > 0:
                continue
            if not live:
                live = True
                await outbox.put(json.dumps({"type": "live"}))
            # A wake-up can arrive before the stream has stored the message: after an
            # empty read look again soon, backing off to the poll interval.
            delay = POLL_S if got else min(POLL_S, delay * 4)
            try:
                await asyncio.wait_for(self.wake.wait(), delay)
                delay = 0.005
            except TimeoutError:
                pass

    async def write(self) -> None:
        while True:
            await self.ws.send_str(await self.outbox.get())

    def on_service(self, record: ServiceRecord | None) -> None:
        if record is None or record.uid != self.record.uid:
            self.gone.set()

    async def on_token(self, digest: str) -> None:
        if digest == self.who.token_digest:
            self.recheck.set()

    async def guard(self) -> tuple[int, str]:
        """Wait until the tail must end: (close code, reason).

        The api's service index and token cache say at once when the service or
        the token changes (no NATS consumer per tail); a slow check covers the rest."""
        store = self.app[STORE]
        project, name = self.record.project, self.record.name
        forget_service = self.app[INDEX].on_change(project, name, self.on_service)
        forget_token = self.app[TOKENS].on_change(self.on_token)
        try:
            while True:
                wait = max(0.0, min(CHECK_S, self.who.expires_at - now()))
                await _wait_any((self.gone, self.recheck), wait)
                self.recheck.clear()
                if self.gone.is_set():
                    return CLOSE_GONE, f"service {name} was deleted"
                if self.who.expires_at <= now():
                    return CLOSE_FORBIDDEN, "session token expired; log in again"
                try:
                    token = await store.get_token(self.who.token_digest)
                except BusError:
                    continue  # NATS is away: check again later
                if token is None:
                    return CLOSE_FORBIDDEN, "session token revoked"
                current = store.read_service(project, name)
                if current is None or current.uid != self.record.uid:
                    return CLOSE_GONE, f"service {name} was deleted"
        finally:
            forget_service()
            forget_token()

    async def end(self) -> None:
        code, reason = await self.guard()
        self.closing = True
        if code == CLOSE_GONE:
            await asyncio.sleep(FINAL_S)  # the last lines and the deletion event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.wait_empty(), 2.0)
        await self.ws.close(code=code, message=reason.encode())


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    """Until one of `events` is set or `timeout` passes."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def _start(
    bus: Bus, spec: TailSpec, tail: int, after: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Where a tail starts reading: (sequence, lines of that message to skip)."""
    if after is not None:
        seq, n = after
        if not spec.lines:
            return seq + 1, 0
        return max(seq, 1), -n  # negative: skip the lines of that batch numbered up to n
    if tail > 0 and spec.lines:
        found, skip = await newest_lines(bus, spec.pattern, tail)
        return (found[0][0].seq, skip) if found else (1, 0)
    if tail > 0:
        start = await bus.streams.start_of_last(spec.stream, spec.pattern, tail)
        return (start if start is not None else 1), 0
    newest = await bus.streams.newest_per_subject(spec.stream, spec.pattern)
    return max((m.seq for m in newest), default=0) + 1, 0


async def _serve(
    request: web.Request, spec_of: Callable[[ServiceRecord], TailSpec]
) -> web.StreamResponse:
    who = await _ws_principal(request)
    record = (await find_service(request, who)).value
    tail = int_param(request.query, "tail", FOLLOW_TAIL_DEFAULT, 0, TAIL_MAX)
    spec = spec_of(record)
    after = parse_after(request.query.get("after"), spec.lines)
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), heartbeat=HEARTBEAT_S, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise BadRequest("this endpoint is a websocket: connect with a websocket client")
    bus = request.app[BUS]
    limits = request.app[LIMITS]
    with limits.follow(who.project):
        async with limits.log_read(who.project):
            start, skip = await _start(bus, spec, tail, after)
        await ws.prepare(request)
        sockets = request.app[SOCKETS]
        sockets.add(ws)
        tail_ = Tail(request.app, ws, spec, who, record, start, skip)
        wakeups = request.app[WAKEUPS]
        await wakeups.join(spec.pattern, tail_.wake)
        workers = [asyncio.create_task(tail_.pump()), asyncio.create_task(tail_.write())]
        ender = asyncio.create_task(tail_.end())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break  # anything the client sends is ignored
        finally:
            sockets.discard(ws)
            for task in workers:
                task.cancel()
            if not ender.done() and tail_.closing:
                await asyncio.wait([ender], timeout=0.5)  # let it say why it closes
            ender.cancel()
            await asyncio.gather(*workers, ender, return_exceptions=True)
            await wakeups.leave(spec.pattern, tail_.wake)
            missed = tail_.outbox.total_missed
            if missed:
                log.info("tail of %s: the client missed %d messages", spec.pattern, missed)
    return ws


async def follow_logs(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        lambda r: TailSpec(
            names.STREAM_LOGS, names.logs_of_service(r.project, r.name), _render_log, lines=True
        ),
    )


async def follow_events(request: web.Request) -> web.StreamResponse:
    return await _serve(
        request,
        lambda r: TailSpec(
            names.STREAM_EVENTS, names.events_subject(r.project, r.name), _render_event
        ),
    )


# ------------------------------------------------------------------ wiring
async def _close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def setup(app: web.Application) -> None:
    """Keep track of open tails and close them with GOING_AWAY when the api shuts down."""
    sockets: set[web.WebSocketResponse] = set()
    app[SOCKETS] = sockets
    app.on_shutdown.append(_close_sockets)


def add_log_routes(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(f"{prefix}/services/{{name}}/logs/follow", follow_logs)
    router.add_get(f"{prefix}/services/{{name}}/events/follow", follow_events)
