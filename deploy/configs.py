"""Configuration files for the platform's servers, written into the data dir.

- the registry's YAML (token auth against our api, deletes enabled),
- Caddy's starting JSON (admin API, the gateway server answering 404),
- supervisord's configuration running every process of `make up`.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from pathlib import Path

from services.gateway.caddy_config import build_config
from shared import names
from shared.settings import Settings


def registry_config(settings: Settings, http_secret: str) -> str:
    # JSON is valid YAML, and quoting every value keeps paths with odd characters safe.
    config = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(settings.data_dir / "registry")},
            "delete": {"enabled": True},
            "maintenance": {
                "uploadpurging": {
                    "enabled": True,
                    "age": "168h",
                    "interval": "24h",
                    "dryrun": False,
                }
            },
        },
        "http": {"addr": settings.registry_addr, "secret": http_secret},
        "auth": {
            "token": {
                "realm": settings.token_realm,
                "service": names.REGISTRY_SERVICE,
                "issuer": names.REGISTRY_ISSUER,
                "rootcertbundle": str(settings.token_cert_path),
            }
        },
        "health": {"storagedriver": {"enabled": False}},
    }
    return json.dumps(config, indent=2) + "\n"


def write_registry_config(settings: Settings) -> Path:
    secret_path = settings.keys_dir / "registry-http.secret"
    if not secret_path.exists():
        secret_path.parent.mkdir(parents=True, exist_ok=True)
        secret_path.write_text(secrets.token_urlsafe(32))
        secret_path.chmod(0o600)
    path = settings.data_dir / "run" / "registry.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(registry_config(settings, secret_path.read_text().strip()))
    return path


def write_caddy_config(settings: Settings) -> Path:
    path = settings.data_dir / "run" / "caddy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_config(settings), indent=2) + "\n")
    return path


def bin_path(name: str) -> str:
    """A console script or binary in this virtualenv's bin/."""
    return str(Path(sys.executable).parent / name)


def _nats_port(settings: Settings) -> str:
    return settings.nats_url.rsplit(":", 1)[-1].strip("/")


def supervisord_config(settings: Settings, root: Path) -> str:
    data = settings.data_dir
    log = data / "log"
    py = shlex.quote(sys.executable)
    nats_host = settings.nats_url.split("//", 1)[-1].rsplit(":", 1)[0]
    programs = {
        "nats": (
            f"{shlex.quote(bin_path('nats-server'))} -a {nats_host} -p {_nats_port(settings)} "
            f"-js -sd {shlex.quote(str(data / 'nats'))}",
            10,
            "",
        ),
        "registry": (
            f"/usr/bin/docker-registry serve {shlex.quote(str(data / 'run' / 'registry.yml'))}",
            20,
            "",
        ),
        "caddy": (
            f"{shlex.quote(bin_path('caddy'))} run --config "
            f"{shlex.quote(str(data / 'run' / 'caddy.json'))}",
            20,
            f'XDG_CONFIG_HOME="{data / "caddy"}",XDG_DATA_HOME="{data / "caddy"}"',
        ),
        "dns": (f"{py} -m services.gateway.dns", 15, ""),
        "api": (f"{py} -m services.api", 30, ""),
        "deployer": (f"{py} -m services.deployer", 30, ""),
        "logs": (f"{py} -m services.logs", 30, ""),
        "gateway": (f"{py} -m services.gateway", 30, ""),
    }
    out = [
        "; written by `python -m deploy up`; edits are overwritten",
        "[supervisord]",
        "nodaemon=true",
        *(["user=root"] if os.geteuid() == 0 else []),
        f"logfile={log / 'supervisord.log'}",
        f"pidfile={data / 'run' / 'supervisord.pid'}",
        f"childlogdir={log}",
        "loglevel=info",
        "",
        "[unix_http_server]",
        f"file={data / 'run' / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{data / 'run' / 'supervisor.sock'}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    for name, (command, priority, env) in programs.items():
        out += [
            f"[program:{name}]",
            f"command={command}",
            f"directory={root}",
            f"priority={priority}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=1000",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={log / (name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=3",
        ]
        if env:
            out.append(f"environment={env}")
        out.append("")
    return "\n".join(out)


def write_supervisord_config(settings: Settings, root: Path) -> Path:
    path = settings.data_dir / "run" / "supervisord.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "log").mkdir(parents=True, exist_ok=True)
    path.write_text(supervisord_config(settings, root))
    return path
