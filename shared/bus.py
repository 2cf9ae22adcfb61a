"""NATS adapter: connect with backoff and declare every stream and KV bucket.

This is the one place that knows how the platform's JetStream resources are
configured. Callers get a `Bus` holding the connection, the JetStream context and
the KV handles. Library errors that callers must handle are re-raised as the
platform's own (`Conflict`, `Missing`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.kv import KeyValue

from shared import names
from shared.models import LOG_BATCH_BYTES
from shared.settings import Settings

log = logging.getLogger(__name__)


class BusError(Exception):
    """NATS is unreachable or answered with an error."""


class Conflict(BusError):
    """A compare-and-set lost: the key changed (or exists) since it was read."""


class Missing(BusError):
    """The key does not exist."""


@dataclass
class Buckets:
    users: KeyValue
    tokens: KeyValue
    services: KeyValue
    revisions: KeyValue
    status: KeyValue
    routes: KeyValue
    gateway: KeyValue
    registry_creds: KeyValue
    log_cursors: KeyValue


@dataclass
class Bus:
    nc: NATS
    js: JetStreamContext
    kv: Buckets
    reconnect_callbacks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    closing: bool = False

    async def close(self) -> None:
        self.closing = True
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (TimeoutError, nats.errors.Error, OSError):
                await self.nc.close()


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


async def ensure_resources(js: JetStreamContext, settings: Settings) -> Buckets:
    """Create the streams and buckets if missing; update limits that changed."""
    for cfg in stream_configs(settings):
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            # exists with a different configuration: bring the limits up to date
            await js.update_stream(cfg)
    handles: dict[str, KeyValue] = {}
    for kv_cfg in bucket_configs():
        try:
            handles[kv_cfg.bucket] = await js.key_value(kv_cfg.bucket)
        except nats.js.errors.BucketNotFoundError:
            handles[kv_cfg.bucket] = await js.create_key_value(kv_cfg)
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
    )


async def connect(
    settings: Settings,
    *,
    name: str,
    stop: asyncio.Event | None = None,
    max_delay: float = 5.0,
) -> Bus:
    """Connect to NATS and declare resources, retrying with backoff until `stop`."""
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
            nc = await nats.connect(
                settings.nats_url,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                allow_reconnect=True,
                reconnected_cb=on_reconnected,
                disconnected_cb=on_disconnected,
                error_cb=on_error,
            )
            js = nc.jetstream(timeout=5)
            kv = await ensure_resources(js, settings)
            bus = Bus(nc=nc, js=js, kv=kv)
            bus_holder.append(bus)
            return bus
        except (TimeoutError, nats.errors.Error, OSError) as err:
            if stop is not None and stop.is_set():
                raise BusError(f"stopped while connecting to NATS: {err}") from err
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
