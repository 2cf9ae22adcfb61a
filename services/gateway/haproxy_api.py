"""HAProxy runtime API adapter: read the routing state, run commands, reload.

The only module that speaks to HAProxy's sockets: the worker's stats socket
(admin level: `show ...`, `add/set/del server`, `add/set/del map`) and the
master CLI (`reload`, `show proc`), both unix sockets. One command per
connection, answered until the socket closes. A socket that does not answer
becomes `ProxyUnavailable`; an answer that is an error, `CommandRefused`.
Parsing HAProxy's answers into `services.gateway.model` types happens here too
(the `parse_*` functions are pure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from services.gateway.haproxy_config import SERVER_OPTIONS
from services.gateway.model import (
    AddRoute,
    AddServer,
    Admin,
    Command,
    DelRoute,
    DelServer,
    ProxyState,
    Server,
    SetRoute,
    SetServerState,
    slot_index,
)

TIMEOUT_S = 5.0

# srv_admin_state bits (HAProxy's SRV_ADMF_*)
_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40  # forced, inherited, config, resolution, health
_DRAIN_BITS = 0x08 | 0x10  # forced, inherited


class ProxyError(Exception):
    """Something went wrong talking to HAProxy."""


class ProxyUnavailable(ProxyError):
    """HAProxy's socket did not answer (HAProxy down, restarting, or too slow)."""


class CommandRefused(ProxyError):
    """HAProxy answered a command with an error."""


@dataclass(frozen=True)
class Info:
    pid: int
    uptime_s: int


# ---------------------------------------------------------------- parsing (pure)
def _table(text: str) -> list[dict[str, str]]:
    """Rows of a `# col col ...` table, by column name (extra fields are dropped)."""
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            columns = line.lstrip("#").split()
            continue
        fields = line.split()
        if columns and len(fields) >= len(columns):
            rows.append(dict(zip(columns, fields, strict=False)))
    return rows


def parse_info(text: str) -> Info:
    values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    try:
        return Info(pid=int(values["Pid"]), uptime_s=int(values.get("Uptime_sec", "0")))
    except (KeyError, ValueError) as err:
        raise ProxyUnavailable(f"unexpected `show info` answer: {text[:200]!r}") from err


def parse_backends(text: str) -> tuple[str, ...]:
    """The slot backends of `show backend`, in pool order."""
    found = [(slot_index(name), name) for name in text.split() if not name.startswith("#")]
    return tuple(name for index, name in sorted((i, n) for i, n in found if i is not None))


def parse_map(text: str) -> dict[str, str]:
    """`show map <file>`: lines `<ref> <key> <value>`; the first entry of a key wins."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.setdefault(parts[1], parts[2])
    return out


def _admin(bits: int) -> Admin:
    if bits & _MAINT_BITS:
        return Admin.MAINT
    if bits & _DRAIN_BITS:
        return Admin.DRAIN
    return Admin.READY


def parse_servers(
    state_text: str, conn_text: str, slots: tuple[str, ...]
) -> dict[str, dict[str, Server]]:
    """Servers of the slot backends from `show servers state` and `show servers conn`."""
    conns: dict[tuple[str, str], tuple[int, int]] = {}
    for row in _table(conn_text):
        backend, _, name = row.get("bkname/svname", "").partition("/")
        try:
            conns[(backend, name)] = (int(row["used_cur"]), int(row["idle_cur"]))
        except (KeyError, ValueError):
            continue
    pool = set(slots)
    out: dict[str, dict[str, Server]] = {}
    for row in _table(state_text):
        backend, name = row.get("be_name", ""), row.get("srv_name", "")
        if backend not in pool:
            continue
        try:
            admin = _admin(int(row["srv_admin_state"]))
            addr = f"{row['srv_addr']}:{int(row['srv_port'])}"
        except (KeyError, ValueError):
            continue
        # a server missing from the connection table is counted busy, to be safe
        used, idle = conns.get((backend, name), (1, 0))
        out.setdefault(backend, {})[name] = Server(name, addr, admin, used, idle)
    return out


def parse_old_workers(text: str) -> int:
    """How many old workers (still finishing requests after a reload) `show proc` lists."""
    count = 0
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").lower()
            continue
        if section == "old workers" and line.strip():
            count += 1
    return count


def command_line(cmd: Command, map_path: Path) -> tuple[str, str]:
    """The runtime API line for a command, and its answer on success."""
    match cmd:
        case AddServer(slot=slot, name=name, addr=addr):
            return f"add server {slot}/{name} {addr} {SERVER_OPTIONS}", "New server registered."
        case SetServerState(slot=slot, name=name, admin=admin):
            return f"set server {slot}/{name} state {admin.value}", ""
        case DelServer(slot=slot, name=name):
            return f"del server {slot}/{name}", "Server deleted."
        case AddRoute(segment=segment, slot=slot):
            return f"add map {map_path} {segment} {slot}", ""
        case SetRoute(segment=segment, slot=slot):
            return f"set map {map_path} {segment} {slot}", ""
        case DelRoute(segment=segment):
            return f"del map {map_path} {segment}", ""
        case _:
            assert_never(cmd)


# ---------------------------------------------------------------- I/O
class HAProxy:
    def __init__(self, socket_path: Path, master_path: Path, map_path: Path) -> None:
        self.socket_path = socket_path
        self.master_path = master_path
        self.map_path = map_path

    async def _ask(self, path: Path, line: str, *, half_close: bool) -> str:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    writer.write(line.encode() + b"\n")
                    if half_close:  # the master CLI answers once our side is done
                        writer.write_eof()
                    await writer.drain()
                    data = await reader.read()
                finally:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except OSError:
                        pass
        except (OSError, TimeoutError) as err:
            raise ProxyUnavailable(f"{path.name}: {line.split()[0]}…: {err!r}") from err
        return data.decode(errors="replace")

    async def ask(self, line: str) -> str:
        """One runtime API command on the stats socket; its answer."""
        return await self._ask(self.socket_path, line, half_close=False)

    async def info(self) -> Info:
        return parse_info(await self.ask("show info"))

    async def read_state(self) -> ProxyState:
        info = await self.info()
        slots = parse_backends(await self.ask("show backend"))
        routes = parse_map(await self.ask(f"show map {self.map_path}"))
        state_text = await self.ask("show servers state")
        conn_text = await self.ask("show servers conn")  # last: the freshest in-use counts
        again = await self.info()
        if again.pid != info.pid:
            raise ProxyUnavailable(f"HAProxy's worker changed while read ({info.pid}, {again.pid})")
        return ProxyState(
            pid=info.pid,
            slots=slots,
            routes=routes,
            servers=parse_servers(state_text, conn_text, slots),
        )

    async def execute(self, cmd: Command) -> None:
        line, success = command_line(cmd, self.map_path)
        answer = (await self.ask(line)).strip()
        if answer != success:
            raise CommandRefused(f"{line}: {answer or 'no answer'}")

    # ------------------------------------------------------------ master CLI
    async def reload(self) -> None:
        """Ask the master to reload: a new worker reads the files, the old one finishes."""
        try:
            await self._ask(self.master_path, "reload", half_close=True)
        except ProxyUnavailable:
            # the master re-executes itself and may drop the connection before answering
            pass

    async def old_workers(self) -> int:
        return parse_old_workers(await self._ask(self.master_path, "show proc", half_close=True))


def describe(state: ProxyState) -> Mapping[str, int]:
    """Counts for logs."""
    return {
        "slots": len(state.slots),
        "routes": len(state.routes),
        "servers": sum(len(s) for s in state.servers.values()),
    }
