"""Typed reads and compare-and-set writes on NATS KV buckets: part of the NATS adapter.

A `Bucket` wraps one nats-py bucket with what the platform needs: typed gets,
create / update with compare-and-set, puts, deletes, purges, scans of every
live key matching a pattern, and following changes. nats-py's errors become
`Conflict`, `Missing` or `BusError`; values are (de)serialised with the codec of
`shared.models`. Nothing here knows which bucket holds what: callers pass the
bucket and the record type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from shared import names
from shared.errors import BusError, Conflict, Missing
from shared.models import decode, encode
from shared.streams import StoredMsg, StreamReader

T = TypeVar("T", bound=msgspec.Struct)
log = logging.getLogger(__name__)

_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a lost compare-and-set


@dataclass(frozen=True)
class Versioned(Generic[T]):
    key: str
    value: T
    revision: int


class Bucket:
    """One KV bucket: its name, the nats-py handle and a reader for scans."""

    def __init__(self, name: str, handle: KeyValue, reader: StreamReader) -> None:
        self.name = name
        self.handle = handle
        self.reader = reader

    @property
    def stream(self) -> str:
        return names.kv_stream(self.name)

    def subject(self, pattern: str) -> str:
        return names.kv_subject(self.name, pattern)

    def key_of(self, subject: str) -> str:
        return names.kv_key_of_subject(self.name, subject)


def _wrap(err: Exception) -> BusError:
    return BusError(f"NATS: {type(err).__name__}: {err}")


def _translate(err: Exception, conflict: str) -> NoReturn:
    """Raise the platform's error for a failed KV write."""
    if isinstance(err, nats.js.errors.KeyWrongLastSequenceError):
        raise Conflict(conflict) from err
    if isinstance(err, nats.js.errors.BadRequestError) and err.err_code == _WRONG_LAST_SEQUENCE:
        raise Conflict(conflict) from err
    if isinstance(err, nats.js.errors.KeyNotFoundError):
        raise Missing(conflict) from err
    raise _wrap(err) from err


_ERRORS = (TimeoutError, nats.errors.Error)


async def get(bucket: Bucket, key: str, cls: type[T]) -> Versioned[T] | None:
    try:
        entry = await bucket.handle.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    except _ERRORS as err:
        raise _wrap(err) from err
    if entry.value is None:
        return None
    return Versioned(key, decode(cls, entry.value), entry.revision or 0)


async def create(bucket: Bucket, key: str, value: msgspec.Struct, ttl: float | None = None) -> int:
    """Store `value` under a new key; `Conflict` if the key exists."""
    try:
        rev: int = await bucket.handle.create(key, encode(value), msg_ttl=ttl)
        return rev
    except _ERRORS as err:
        _translate(err, f"{key} already exists")


async def update(bucket: Bucket, key: str, value: msgspec.Struct, last: int) -> int:
    """Compare-and-set: write only if the key is still at revision `last`."""
    try:
        rev: int = await bucket.handle.update(key, encode(value), last=last)
        return rev
    except _ERRORS as err:
        _translate(err, f"{key} changed since revision {last}")


async def put(bucket: Bucket, key: str, value: msgspec.Struct) -> int:
    """Unconditional write: only for keys with a single writer."""
    try:
        rev: int = await bucket.handle.put(key, encode(value))
        return rev
    except _ERRORS as err:
        raise _wrap(err) from err


async def delete(bucket: Bucket, key: str, last: int | None = None) -> None:
    try:
        await bucket.handle.delete(key, last=last)
    except _ERRORS as err:
        _translate(err, f"{key} changed since revision {last}")


async def purge(bucket: Bucket, key: str) -> None:
    """Remove a key and its history."""
    try:
        await bucket.handle.purge(key)
    except _ERRORS as err:
        raise _wrap(err) from err


async def _newest(bucket: Bucket, pattern: str) -> list[StoredMsg]:
    """The newest entry of every key matching `pattern`, deletes and purges dropped.

    Reads with one direct-get request instead of a watcher: a watcher's
    "no more values" marker can arrive before the values themselves.
    """
    found = await bucket.reader.newest_per_subject(bucket.stream, bucket.subject(pattern))
    return [m for m in found if m.headers.get("KV-Operation") not in ("DEL", "PURGE")]


async def scan(bucket: Bucket, pattern: str, cls: type[T]) -> list[Versioned[T]]:
    """Current values of every live key matching a NATS subject pattern."""
    return [
        Versioned(bucket.key_of(m.subject), decode(cls, m.data), m.seq)
        for m in await _newest(bucket, pattern)
        if m.data
    ]


async def keys(bucket: Bucket, pattern: str) -> list[str]:
    """Live keys matching a NATS subject pattern."""
    return [bucket.key_of(m.subject) for m in await _newest(bucket, pattern)]


async def follow(
    bucket: Bucket,
    pattern: str,
    on_entry: Callable[[str, bytes | None, int], None],
    stop: asyncio.Event,
    rewatch: asyncio.Event,
) -> None:
    """Call `on_entry(key, value or None if deleted, revision)` for every change.

    Starts with the current values. The watcher is re-created whenever `rewatch`
    is set (after a NATS reconnect its consumer is gone) and after errors.
    """
    while not stop.is_set():
        rewatch.clear()
        try:
            watcher = await bucket.handle.watch(pattern)
        except _ERRORS as err:
            log.warning("cannot watch %s: %s", pattern, err)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
            continue
        try:
            while not stop.is_set() and not rewatch.is_set():
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
                except nats.errors.TimeoutError:
                    continue
                if entry is None:
                    continue
                deleted = entry.operation in ("DEL", "PURGE")
                on_entry(entry.key, None if deleted else entry.value, entry.revision or 0)
        finally:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except _ERRORS:
                pass
