"""The DNS responder process: answer over UDP on loopback from the routes file.

Re-reads the routes file whenever it changes (checked every 20 ms; the gateway
replaces it atomically), so it keeps answering while NATS or the gateway are
down, and starts answering at once after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import cast

from services.gateway.dns import wire
from services.gateway.dns.table import Table, routes_from_json
from shared.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.01


class Responder(asyncio.DatagramProtocol):
    def __init__(self, table: Table) -> None:
        self.table = table
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is None:
            return
        try:
            reply: bytes | None = self.table.answer(wire.parse_query(data))
        except wire.MalformedQuery:
            reply = wire.error_reply(data, wire.RCODE_FORMERR)
        except (ValueError, UnicodeError):
            reply = wire.error_reply(data, wire.RCODE_FORMERR)
        if reply is not None:
            self.transport.sendto(reply, addr)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def load_table(settings: Settings) -> Table:
    routes: dict[str, list[str]] = {}
    try:
        routes = routes_from_json(settings.gateway_routes_path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        log.warning("cannot read %s: %s", settings.gateway_routes_path, err)
    return Table(routes, settings.gateway_notfound_port, settings.gateway_unavailable_port)


async def run(settings: Settings, *, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    responder = Responder(load_table(settings))
    transport, _ = await loop.create_datagram_endpoint(
        lambda: responder, local_addr=("127.0.0.1", settings.gateway_dns_port)
    )
    log.info(
        "dns ready on 127.0.0.1:%d with %d routes",
        settings.gateway_dns_port,
        len(responder.table.routes),
    )
    seen = _stamp(settings.gateway_routes_path)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), POLL_S)
            except TimeoutError:
                pass
            now = _stamp(settings.gateway_routes_path)
            if now != seen:
                seen = now
                responder.table = load_table(settings)
                log.debug("routes reloaded: %d", len(responder.table.routes))
    finally:
        transport.close()
