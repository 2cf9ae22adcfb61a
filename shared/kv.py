"""Typed reads and compare-and-set writes on NATS KV buckets.

Translates nats-py's errors into `Conflict` and `Missing` and (de)serialises
values with the codec of `shared.models`. Nothing here knows which bucket holds
what: callers pass the bucket and the record type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from shared.bus import BusError, Conflict, Missing
from shared.models import decode, encode
from shared.streams import StoredMsg, newest_per_subject

T = TypeVar("T", bound=msgspec.Struct)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Versioned(Generic[T]):
    key: str
    value: T
    revision: int


def _wrap(err: Exception) -> BusError:
    return BusError(f"NATS: {type(err).__name__}: {err}")


async def get(kv: KeyValue, key: str, cls: type[T]) -> Versioned[T] | None:
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    except (TimeoutError, nats.errors.Error) as err:
        raise _wrap(err) from err
    if entry.value is None:
        return None
    return Versioned(key, decode(cls, entry.value), entry.revision or 0)


async def create(kv: KeyValue, key: str, value: msgspec.Struct, ttl: float | None = None) -> int:
    """Store `value` under a new key; `Conflict` if the key exists."""
    try:
        rev: int = await kv.create(key, encode(value), msg_ttl=ttl)
        return rev
    except nats.js.errors.KeyWrongLastSequenceError as err:
        raise Conflict(f"{key} already exists") from err
    except nats.js.errors.BadRequestError as err:
        if err.err_code == 10071:  # wrong last sequence
            raise Conflict(f"{key} already exists") from err
        raise _wrap(err) from err
    except (TimeoutError, nats.errors.Error) as err:
        raise _wrap(err) from err


async def update(kv: KeyValue, key: str, value: msgspec.Struct, last: int) -> int:
    """Compare-and-set: write only if the key is still at revision `last`."""
    try:
        rev: int = await kv.update(key, encode(value), last=last)
        return rev
    except nats.js.errors.KeyWrongLastSequenceError as err:
        raise Conflict(f"{key} changed since revision {last}") from err
    except nats.js.errors.BadRequestError as err:
        if err.err_code == 10071:
            raise Conflict(f"{key} changed since revision {last}") from err
        raise _wrap(err) from err
    except (TimeoutError, nats.errors.Error) as err:
        raise _wrap(err) from err


async def put(kv: KeyValue, key: str, value: msgspec.Struct) -> int:
    """Unconditional write: only for keys with a single writer."""
    try:
        rev: int = await kv.put(key, encode(value))
        return rev
    except (TimeoutError, nats.errors.Error) as err:
        raise _wrap(err) from err


async def delete(kv: KeyValue, key: str, last: int | None = None) -> None:
    try:
        await kv.delete(key, last=last)
    except nats.js.errors.KeyWrongLastSequenceError as err:
        raise Conflict(f"{key} changed since revision {last}") from err
    except nats.js.errors.BadRequestError as err:
        if err.err_code == 10071:
            raise Conflict(f"{key} changed since revision {last}") from err
        raise _wrap(err) from err
    except nats.js.errors.KeyNotFoundError as err:
        raise Missing(key) from err
    except (TimeoutError, nats.errors.Error) as err:
        raise _wrap(err) from err


async def purge(kv: KeyValue, key: str) -> None:
    """Remove a key and its history."""
    try:
        await kv.purge(key)
    except (TimeoutError, nats.errors.Error) as err:
        raise _wrap(err) from err


def _kv_subject(bucket: KeyValue, pattern: str) -> str:
    return f"$KV.{bucket._name}.{pattern}"


async def _newest(bucket: KeyValue, pattern: str) -> list[StoredMsg]:
    """The newest entry of every key matching `pattern`, deletes and purges dropped.

    Reads with one direct-get request instead of a watcher: a watcher's
    "no more values" marker can arrive before the values themselves.
    """
    found = await newest_per_subject(bucket._js._nc, bucket._stream, _kv_subject(bucket, pattern))
    return [m for m in found if m.headers.get("KV-Operation") not in ("DEL", "PURGE")]


def _key_of(bucket: KeyValue, subject: str) -> str:
    return subject[len(f"$KV.{bucket._name}.") :]


async def scan(kv: KeyValue, pattern: str, cls: type[T]) -> list[Versioned[T]]:
    """Current values of every live key matching a NATS subject pattern."""
    return [
        Versioned(_key_of(kv, m.subject), decode(cls, m.data), m.seq)
        for m in await _newest(kv, pattern)
        if m.data
    ]


async def keys(kv: KeyValue, pattern: str) -> list[str]:
    """Live keys matching a NATS subject pattern."""
    return [_key_of(kv, m.subject) for m in await _newest(kv, pattern)]


async def follow(
    bucket: KeyValue,
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
            watcher = await bucket.watch(pattern)
        except (TimeoutError, nats.errors.Error) as err:
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
            except (TimeoutError, nats.errors.Error):
                pass
