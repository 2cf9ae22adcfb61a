"""The NATS adapter: the connection, JetStream resources, publishing and subscribing.

This is the one place (with its parts `shared.kv` and `shared.streams`) that
imports nats-py. Services get a `Bus` and call its typed methods: publish an
event, publish with an acknowledgement (awaited, or in flight), subscribe to a
subject, purge a stream's messages, read stored messages (`Bus.streams`) and use
the KV buckets (`Bus.kv`, through `shared.kv`). Library errors become the
platform's own (`BusError`, `Conflict`, `Missing` from `shared.errors`).

`connect` logs in as one of the platform's NATS identities (`shared.natsconf`)
with its password from the data dir and its private reply-inbox prefix,
retries with backoff, and declares every stream and bucket when the identity
may (the api, operators' tools) or waits until they exist: it is also the one
place that knows how they are configured. `connect_control` gives the api
the two connections of its auth callout (AUTH and SYS accounts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue

from shared import names, natsconf, natsserver
from shared.errors import BusError, Conflict, Missing
from shared.events import Event, encode_event
from shared.kv import Bucket
from shared.models import LOG_BATCH_BYTES
from shared.settings import Settings
from shared.streams import StreamReader

__all__ = ["Bus", "BusError", "Conflict", "Missing", "Refused", "connect"]

log = logging.getLogger(__name__)

_ERRORS = (TimeoutError, nats.errors.Error, OSError)

OnMessage = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Buckets:
    users: Bucket
    tokens: Bucket
    services: Bucket
    revisions: Bucket
    status: Bucket
    routes: Bucket
    gateway: Bucket
    registry_creds: Bucket
    log_cursors: Bucket
    paths: Bucket
    nodes: Bucket


@dataclass(frozen=True, slots=True)
class Refused:
    """The stream refused a message for good (e.g. too large): sending it again cannot help."""

    reason: str


Ack = asyncio.Future[Any]
"""The acknowledgement of a message published with `Bus.publish_async` (see `ack_outcome`)."""


def ack_outcome(ack: Ack) -> int | Refused | None:
    """The stream sequence an acknowledged publish got; Refused; None while unknown or lost."""
    if not ack.done() or ack.cancelled():
        return None
    err = ack.exception()
    if err is None:
        return int(ack.result().seq)
    if isinstance(err, nats.js.errors.APIError) and err.code == 400:
        return Refused(str(err))
    return None


def cancel_acks(acks: list[Ack]) -> None:
    """Give up on acknowledgements (retrieving errors, so asyncio does not warn about them)."""
    for ack in acks:
        if not ack.done():
            ack.cancel()
        elif not ack.cancelled():
            ack.exception()


def lost_ack() -> Ack:
    """An acknowledgement that will never come (for a publish that failed before it left)."""
    ack: Ack = asyncio.get_running_loop().create_future()
    ack.cancel()
    return ack


class Subscription:
    """A core NATS subscription; `unsubscribe` ends it (errors are ignored then)."""

    def __init__(self, sub: NatsSubscription) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        try:
            await self._sub.unsubscribe()
        except _ERRORS:
            pass


@dataclass
class Bus:
    nc: NATS  # for the adapter modules in shared/ and for tests only
    js: JetStreamContext
    kv: Buckets
    streams: StreamReader
    reconnect_callbacks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    closing: bool = False

    # ------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    @property
    def connection(self) -> int | None:
        """Which connection a publish goes out on now (None: none, it is buffered for the next)."""
        return int(self.nc.stats["reconnects"]) if self.nc.is_connected else None

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts."""
        return int(self.nc.max_payload)

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call `callback` after every reconnect (subscriptions' consumers must be rebuilt)."""
        self.reconnect_callbacks.append(callback)

    def forget_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        if callback in self.reconnect_callbacks:
            self.reconnect_callbacks.remove(callback)

    async def flush(self) -> None:
        """Return once the server has everything sent so far (subscriptions included)."""
        try:
            await self.nc.flush()
        except _ERRORS as err:
            raise BusError(f"NATS: cannot flush: {err}") from err

    async def close(self) -> None:
        self.closing = True
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except _ERRORS:
                await self.nc.close()

    # ------------------------------------------------------------ publishing
    async def publish_event(self, event: Event) -> None:
        """Store an event on the EVENTS stream (the subject of its service)."""
        await self.publish(names.events_subject(event.project, event.service), encode_event(event))

    async def publish(self, subject: str, payload: bytes, *, msg_id: str | None = None) -> int:
        """Store a message on the stream of `subject`; its sequence once acknowledged."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            ack = await self.js.publish(subject, payload, headers=headers)
        except _ERRORS as err:
            raise BusError(f"NATS: cannot publish on {subject}: {err}") from err
        return int(ack.seq)

    async def publish_async(self, subject: str, payload: bytes, *, msg_id: str) -> Ack:
        """Send a message to a stream without waiting for its acknowledgement."""
        try:
            return await self.js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
        except _ERRORS as err:
            raise BusError(
                f"NATS: cannot publish on {subject}: {type(err).__name__}: {err}"
            ) from err

    async def purge(self, stream: str, *, subject: str, before_seq: int | None = None) -> None:
        """Drop the messages of `subject` from `stream` (only those before `before_seq`)."""
        try:
            if before_seq is None:
                await self.js.purge_stream(stream, subject=subject)
            else:
                await self.js.purge_stream(stream, seq=before_seq, subject=subject)
        except _ERRORS as err:
            raise BusError(f"NATS: cannot purge {subject} from {stream}: {err}") from err

    async def ensure_session_consumer(
        self, stream: str, name: str, filter_subject: str, inactive_s: float
    ) -> None:
        """A pull consumer for one end user's session (no acks, from the first message on).

        Made again with the same configuration, it is left as it is."""
        config = ConsumerConfig(
            name=name,
            filter_subject=filter_subject,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=inactive_s,
        )
        try:
            await self.js.add_consumer(stream, config)
        except _ERRORS as err:
            raise BusError(f"NATS: cannot make consumer {name} on {stream}: {err}") from err

    # ------------------------------------------------------------ subscribing
    async def subscribe(self, subject: str, on_message: OnMessage) -> Subscription:
        """Call `on_message(subject, data)` for every message published on `subject`."""

        async def deliver(msg: Msg) -> None:
            await on_message(msg.subject, msg.data)

        try:
            sub = await self.nc.subscribe(subject, cb=deliver)
        except _ERRORS as err:
            raise BusError(f"NATS: cannot subscribe to {subject}: {err}") from err
        return Subscription(sub)


def _bucket(name: str, history: int = 1, max_value: int | None = None) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=name,
        history=history,
        storage=StorageType.FILE,
        direct=True,
        max_value_size=max_value,
    )


def bucket_configs() -> list[KeyValueConfig]:
    return [
        _bucket(names.BUCKET_USERS),
        _bucket(names.BUCKET_TOKENS),
        _bucket(names.BUCKET_SERVICES, history=5),
        _bucket(names.BUCKET_REVISIONS),
        _bucket(names.BUCKET_STATUS),
        _bucket(names.BUCKET_ROUTES),
        _bucket(names.BUCKET_GATEWAY),
        _bucket(names.BUCKET_REGISTRY_CREDS),
        _bucket(names.BUCKET_LOG_CURSORS),
        _bucket(names.BUCKET_PATHS),
        _bucket(names.BUCKET_NODES),
    ]


def stream_configs(settings: Settings) -> list[StreamConfig]:
    return [
        StreamConfig(
            name=names.STREAM_EVENTS,
            subjects=[names.EVENTS_ALL],
            storage=StorageType.FILE,
            max_msgs_per_subject=settings.events_per_service,
            allow_direct=True,
        ),
        StreamConfig(
            name=names.STREAM_LOGS,
            subjects=[names.LOGS_ALL],
            storage=StorageType.FILE,
            # A message holds one or more lines, so this keeps at least that many
            # lines per task; the collector trims older batches by line count.
            max_msgs_per_subject=settings.log_max_lines_per_task,
            max_age=float(settings.log_max_age_s),
            # a batch, or one line on its own (JSON escapes, envelope and headers)
            max_msg_size=max(LOG_BATCH_BYTES, settings.log_max_line_bytes) + 2048,
            duplicate_window=120.0,
            allow_direct=True,
        ),
    ]


async def ensure_resources(
    nc: NATS, js: JetStreamContext, settings: Settings, *, identity: str
) -> Buckets:
    """Bind the buckets. An identity that may declare them first creates the streams and
    buckets if missing and updates limits that changed; for another, a missing bucket
    it uses is an error (`connect` retries until the api made it)."""
    declare = identity in _DECLARES
    uses = natsconf.buckets_of(identity)
    if declare:
        for cfg in stream_configs(settings):
            try:
                await js.add_stream(cfg)
            except nats.js.errors.BadRequestError:
                # exists with a different configuration: bring the limits up to date
                await js.update_stream(cfg)
    reader = StreamReader(nc, js)
    handles: dict[str, Bucket] = {}
    for kv_cfg in bucket_configs():
        if kv_cfg.bucket not in uses and not declare:
            # not this identity's: a handle without a look-up (using it is refused)
            handles[kv_cfg.bucket] = Bucket(kv_cfg.bucket, _unbound(js, kv_cfg.bucket), reader)
            continue
        try:
            handle = await js.key_value(kv_cfg.bucket)
        except nats.js.errors.BucketNotFoundError:
            if not declare:
                raise
            handle = await js.create_key_value(kv_cfg)
        handles[kv_cfg.bucket] = Bucket(kv_cfg.bucket, handle, reader)
    return Buckets(
        users=handles[names.BUCKET_USERS],
        tokens=handles[names.BUCKET_TOKENS],
        services=handles[names.BUCKET_SERVICES],
        revisions=handles[names.BUCKET_REVISIONS],
        status=handles[names.BUCKET_STATUS],
        routes=handles[names.BUCKET_ROUTES],
        gateway=handles[names.BUCKET_GATEWAY],
        registry_creds=handles[names.BUCKET_REGISTRY_CREDS],
        log_cursors=handles[names.BUCKET_LOG_CURSORS],
        paths=handles[names.BUCKET_PATHS],
        nodes=handles[names.BUCKET_NODES],
    )


Handler = Callable[[bytes], Awaitable[bytes | None]]


class ControlConnection:
    """A connection outside the platform's account (the auth callout's AUTH, the server's SYS)."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def serve(self, subject: str, handler: Handler) -> None:
        """Answer every request on `subject` with what `handler` returns (None: no answer)."""

        async def on_request(msg: Msg) -> None:
            answer = await handler(msg.data)
            if answer is not None and msg.reply:
                try:
                    await msg.respond(answer)
                except _ERRORS as err:
                    log.warning("cannot answer on %s: %s", subject, err)

        try:
            await self._nc.subscribe(subject, cb=on_request)
        except _ERRORS as err:
            raise BusError(f"NATS: cannot serve {subject}: {err}") from err

    async def request(self, subject: str, payload: bytes, timeout: float = 2.0) -> bytes:
        try:
            msg = await self._nc.request(subject, payload, timeout=timeout)
        except _ERRORS as err:
            raise BusError(f"NATS: no answer on {subject}: {err}") from err
        return bytes(msg.data)

    async def close(self) -> None:
        try:
            await self._nc.drain()
        except _ERRORS:
            await self._nc.close()


async def _open(settings: Settings, identity: str, name: str, **options: Any) -> NATS:
    nc = await nats.connect(
        settings.nats_url,
        name=name,
        user=identity,
        password=natsserver.password(settings, identity),
        inbox_prefix=natsconf.inbox_prefix(identity),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        **options,
    )
    return nc


async def connect_control(settings: Settings, identity: str, name: str) -> ControlConnection:
    """Connect as `callout` or `sys` (one attempt; the api's start retries as a whole)."""

    async def on_error(err: Exception) -> None:
        log.debug("%s: NATS error: %s", name, err)

    try:
        return ControlConnection(await _open(settings, identity, name, error_cb=on_error))
    except _ERRORS as err:
        raise BusError(f"NATS: cannot connect as {identity}: {err}") from err


_DECLARES = frozenset({natsconf.API, natsconf.OPERATOR})


def _unbound(js: JetStreamContext, bucket: str) -> KeyValue:
    return KeyValue(
        name=bucket,
        stream=names.kv_stream(bucket),
        pre=names.kv_subject(bucket, ""),
        js=js,
        direct=True,
    )


async def connect(
    settings: Settings,
    *,
    name: str,
    identity: str = natsconf.OPERATOR,
    stop: asyncio.Event | None = None,
    max_delay: float = 5.0,
) -> Bus:
    """Connect as `identity` (resources declared or bound), retrying with backoff until `stop`."""
    delay = 0.2
    bus_holder: list[Bus] = []

    async def on_reconnected() -> None:
        log.info("%s: reconnected to NATS", name)
        for cb in list(bus_holder[0].reconnect_callbacks) if bus_holder else []:
            try:
                await cb()
            except Exception:
                log.exception("%s: reconnect callback failed", name)

    async def on_disconnected() -> None:
        if not (bus_holder and bus_holder[0].closing):
            log.warning("%s: disconnected from NATS", name)

    async def on_error(err: Exception) -> None:
        log.debug("%s: NATS error: %s", name, err)

    while True:
        try:
            nc = await _open(
                settings,
                identity,
                name,
                reconnected_cb=on_reconnected,
                disconnected_cb=on_disconnected,
                error_cb=on_error,
            )
            js = nc.jetstream(timeout=5)
            try:
                kv = await ensure_resources(nc, js, settings, identity=identity)
            except BaseException:
                await nc.close()
                raise
            bus = Bus(nc=nc, js=js, kv=kv, streams=kv.users.reader)
            bus_holder.append(bus)
            return bus
        except (TimeoutError, nats.errors.Error, OSError) as err:
            if stop is not None and stop.is_set():
                raise BusError(f"stopped while connecting to NATS: {err}") from err
            if isinstance(err, nats.js.errors.BucketNotFoundError):
                log.info("%s: waiting for the api to make the buckets; again in %.1fs", name, delay)
            else:
                log.warning(
                    "%s: NATS at %s not ready (%s); retrying in %.1fs",
                    name,
                    settings.nats_url,
                    err or type(err).__name__,
                    delay,
                )
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    raise BusError("stopped while connecting to NATS") from err
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
