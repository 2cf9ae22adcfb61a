"""Configuration files for the platform's servers, written into the data dir.

- the registry's YAML (token auth against our api, deletes enabled),
- HAProxy's starting files (the routes the gateway last wrote, else empty slots),
- supervisord's configuration running every process of `make up`.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from pathlib import Path

from services.gateway import haproxy_config
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
        "http": {"addr": settings.registry_listen or settings.registry_addr, "secret": http_secret},
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


def write_haproxy_config(settings: Settings) -> Path:
    """HAProxy's files with the routes the gateway last wrote, if any (it writes them anew
    with every route change), so that HAProxy serves them before the gateway runs."""
    try:
        previous: str | None = haproxy_config.layout_path(settings).read_text()
    except OSError:
        previous = None
    for path, text in haproxy_config.initial_files(settings, previous).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return settings.haproxy_config_path


def bin_path(name: str) -> str:
    """A console script or binary in this virtualenv's bin/."""
    return str(Path(sys.executable).parent / name)


def supervisord_config(settings: Settings, root: Path) -> str:
    data = settings.data_dir
    log = data / "log"
    py = shlex.quote(sys.executable)
    programs = {
        "nats": (
            f"{shlex.quote(bin_path('nats-server'))} -c "
            f"{shlex.quote(str(settings.nats_config_path))}",
            10,
            "",
        ),
        "registry": (
            f"/usr/bin/docker-registry serve {shlex.quote(str(data / 'run' / 'registry.yml'))}",
            20,
            "",
        ),
        "haproxy": (" ".join(shlex.quote(a) for a in haproxy_config.argv(settings)), 20, ""),
        "api": (f"{py} -m services.api", 30, ""),
        "deployer": (f"{py} -m services.deployer", 30, ""),
        "logs": (f"{py} -m services.logs", 30, ""),
        "gateway": (f"{py} -m services.gateway", 30, ""),
    }
    out = [
        "; written by `python -m deploy up`; edits are overwritten",
        "[supervisord]",
        "nodaemon=true",
        "umask=077",
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
