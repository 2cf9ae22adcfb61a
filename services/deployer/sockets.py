"""Which TCP ports a task listens on, from its network namespace's socket table. Pure parsing.

`/proc/<pid>/net/tcp` and `tcp6` of a process list the sockets of its network
namespace: a row whose state is 0A (LISTEN) names a listening port (hex, after
the address). The deployer reads them for a task that refuses connections, to
say "the task listens on 9090, but container-port is 8080" within seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

_LISTEN = "0A"


def _loopback(address: str) -> bool:
    """A /proc/net/tcp address (hex, host byte order) in 127.0.0.0/8 or ::1."""
    if len(address) == 8:
        return address[-2:] == "7F"  # little-endian: the first octet comes last
    return address == "00000000000000000000000001000000"


def listening_ports(tables: Iterable[str]) -> set[int]:
    """The ports in LISTEN state in the given /proc/net/tcp{,6} texts, loopback ones left out.

    Loopback listeners cannot be reached from outside the task (Docker's own DNS
    resolver listens on 127.0.0.11 in every task of a user-defined network)."""
    ports: set[int] = set()
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _LISTEN:
                continue
            address, _, port = fields[1].rpartition(":")
            if _loopback(address):
                continue
            try:
                ports.add(int(port, 16))
            except ValueError:
                continue
    return ports
