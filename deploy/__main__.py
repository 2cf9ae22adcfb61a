"""`python -m deploy {prepare|up|registry-gc}`: run the platform on this machine.

`up` writes keys and configs into the data dir, prints how to use the platform
and hands over to supervisord, which runs nats-server, the registry, HAProxy and
the four platform services and restarts any that die. Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

from deploy import configs, keys
from shared import natsserver
from shared.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent


def prepare(settings: Settings) -> None:
    for sub in ("nats", "registry", "log", "run", "keys"):
        (settings.data_dir / sub).mkdir(parents=True, exist_ok=True)
    keys.ensure_all(settings)
    natsserver.write_config(settings)
    configs.write_registry_config(settings)
    configs.write_haproxy_config(settings)
    configs.write_supervisord_config(settings, ROOT)


def _port_in_use(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host or "127.0.0.1", int(port))) == 0


def banner(settings: Settings) -> str:
    api = f"{settings.api_public_url}{settings.api_prefix}"
    return f"""
servicectl is starting (data in {settings.data_dir}, logs in {settings.data_dir / "log"})

  API      {api}/            (clfpy: ServicesClient("{api}/"))
  Gateway  {settings.gateway_public_url}/<project>-<service>
  Registry {settings.registry_addr}

Next, in another shell:
  1. create a user (the password is read from stdin):
       echo 'choose-a-password' | .venv/bin/servicectl-admin add-user alice --project demo
  2. get a session token:
       .venv/bin/servicectl login --api {api} --user alice --project demo
     or: curl -s -X POST {api}/auth/tokens -H 'Content-Type: application/json' \\
           -d '{{"username": "alice", "password": "choose-a-password", "project": "demo"}}'
  3. deploy the example: make demo   (see README.md for the walkthrough)

Ctrl-C stops everything; `make up` again finds all data again.
"""


def up(settings: Settings) -> None:
    prepare(settings)
    busy = [
        f"{label} {addr}"
        for label, addr in (
            ("api", f"{settings.api_host}:{settings.api_port}"),
            ("gateway", f"{settings.gateway_host}:{settings.gateway_port}"),
            ("registry", settings.registry_addr),
            ("nats", settings.nats_url.split("//", 1)[-1]),
        )
        if _port_in_use(addr)
    ]
    if busy:
        print(
            "deploy: these addresses are already in use: " + ", ".join(busy) + "\n"
            "Is the platform already running? Stop it, or choose other ports with the "
            "SERVICECTL_* variables (see README.md).",
            file=sys.stderr,
        )
        raise SystemExit(1)
    print(banner(settings), flush=True)
    conf = settings.data_dir / "run" / "supervisord.conf"
    os.execv(configs.bin_path("supervisord"), ["supervisord", "-n", "-c", str(conf)])


def registry_gc(settings: Settings) -> None:
    """Free disk space of deleted images: the registry must be stopped meanwhile."""
    conf = str(settings.data_dir / "run" / "supervisord.conf")
    ctl = [configs.bin_path("supervisorctl"), "-c", conf]
    running = subprocess.run([*ctl, "status", "registry"], capture_output=True).returncode == 0
    if running:
        subprocess.run([*ctl, "stop", "registry"], check=True)
    try:
        subprocess.run(
            [
                "/usr/bin/docker-registry",
                "garbage-collect",
                "--delete-untagged",
                str(settings.data_dir / "run" / "registry.yml"),
            ],
            check=True,
        )
    finally:
        if running:
            subprocess.run([*ctl, "start", "registry"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy")
    parser.add_argument("command", choices=["prepare", "up", "registry-gc"])
    args = parser.parse_args()
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as err:
        print(f"deploy: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.command == "prepare":
        prepare(settings)
    elif args.command == "up":
        up(settings)
    else:
        registry_gc(settings)


if __name__ == "__main__":
    main()
