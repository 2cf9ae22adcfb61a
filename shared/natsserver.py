"""The nats-server's configuration on disk: write it, add a project's account, reload it.

The configuration (`shared.natsconf.render`) is written into the data dir
(mode 0600: it holds the platform identities' passwords) from the secrets
`deploy/keys.py` generated and the list of projects that have an account.
Adding a project (a user of a new project is created) rewrites it and asks a
running server to reload (SIGHUP through its pid file); connections stay up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import nkeys

from shared import natsconf
from shared.settings import Settings

log = logging.getLogger(__name__)


def _read_private(path: Path) -> str:
    return path.read_text().strip()


def write_private(path: Path, data: str) -> None:
    """Write a file only its owner can read, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def password(settings: Settings, identity: str) -> str:
    return _read_private(settings.nats_secret_path(identity))


def issuer_public_key(settings: Settings) -> str:
    kp = nkeys.from_seed(_read_private(settings.nats_issuer_seed_path).encode())
    return str(kp.public_key.decode())


def projects(settings: Settings) -> list[str]:
    try:
        found = json.loads(settings.nats_projects_path.read_text())
    except (OSError, ValueError):
        return []
    return sorted({str(p) for p in found}) if isinstance(found, list) else []


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("//", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host or "127.0.0.1", int(port)


def server_config(settings: Settings, monitor_port: int = 0) -> natsconf.ServerConfig:
    host, port = _host_port(settings.nats_url)
    return natsconf.ServerConfig(
        host=host,
        port=port,
        store_dir=str(settings.nats_store_dir),
        pid_file=str(settings.nats_pid_path),
        passwords={i: password(settings, i) for i in natsconf.ALL_IDENTITIES},
        callout_issuer=issuer_public_key(settings),
        projects=tuple(projects(settings)),
        monitor_port=monitor_port,
    )


def write_config(settings: Settings, monitor_port: int = 0) -> Path:
    path = settings.nats_config_path
    write_private(path, natsconf.render(server_config(settings, monitor_port)))
    return path


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    lock = settings.nats_projects_path.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_project(settings: Settings, project: str) -> bool:
    """Give `project` its NATS account; True if it was new (the server was asked to reload)."""
    with _locked(settings):
        known = projects(settings)
        if project in known:
            return False
        write_private(settings.nats_projects_path, json.dumps(sorted({*known, project})) + "\n")
        write_config(settings)
    reload(settings)
    return True


def reload(settings: Settings) -> bool:
    """Ask the running nats-server to read its configuration again; False if none runs."""
    try:
        pid = int(settings.nats_pid_path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as err:
        log.info("nats-server not reloaded (%s): it reads the configuration when it starts", err)
        return False
    return True
