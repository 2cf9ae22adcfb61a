"""Host firewall for tasks: a task may not open connections to the host itself.

Tasks reach the outside through their project's bridge (`sctl...`); the host
answers on that bridge's address too, so without this rule a task could try
every port the host listens on beyond loopback. One iptables rule (INPUT, new
connections arriving on any `sctl+` interface: drop) covers every project
network, present and future. Replies to connections the host opened (the
gateway, health checks) are not new and pass. Needs root and iptables, as
dockerd does; without them the platform warns and goes on.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

from shared import names

log = logging.getLogger(__name__)

RULE = [
    "INPUT",
    "-i",
    f"{names.TASK_BRIDGE_PREFIX}+",
    "-m",
    "conntrack",
    "--ctstate",
    "NEW",
    "-j",
    "DROP",
]


async def _iptables(*args: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        "iptables", "-w", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode and args[0] != "-C":
        log.warning("iptables %s: %s", " ".join(args), err.decode(errors="replace").strip())
    return proc.returncode or 0


async def ensure_task_firewall() -> bool:
    """Install the rule unless it is there; False (with a warning) if it cannot be."""
    if shutil.which("iptables") is None:
        log.warning("iptables not found: tasks can open connections to the host's addresses")
        return False
    if await _iptables("-C", *RULE) == 0:
        return True
    ok = await _iptables("-I", *RULE) == 0
    if ok:
        log.info("firewall: tasks may not open connections to the host (%s)", " ".join(RULE))
    return ok
