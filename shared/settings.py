"""Platform settings: one frozen object, read from the environment once.

`Settings.from_env` is called by each process's `__main__` (and by test
fixtures with a dict); everything else receives the object explicitly. No other
module reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _str(env, name, default)
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {raw!r}")


def _network(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _str(env, name, default)
    try:
        net = ipaddress.ip_network(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an IPv4 network such as 10.213.0.0/16") from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.is_private:
        raise SettingsError(f"{name} must be a private IPv4 network, got {raw!r}")
    return str(net)


_CAP = re.compile(r"[A-Z_]{2,32}")


def _caps(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    caps = tuple(c.strip().upper().removeprefix("CAP_") for c in raw.split(",") if c.strip())
    bad = [c for c in caps if not _CAP.fullmatch(c)]
    if bad:
        raise SettingsError(f"{name}: {bad[0]!r} is not a capability name such as NET_BIND_SERVICE")
    return caps


def _host_memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return 4096


def _normalise_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip("/")
    return "" if prefix == "/" else prefix


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    # where everything persistent lives (NATS store, keys, registry data)
    data_dir: Path = Path("var")
    # a name that tells this platform's Docker objects from any other's
    instance: str = "default"
    nats_url: str = "nats://127.0.0.1:4222"
    # the NATS address users are told to connect to (with their session token)
    nats_public_url: str = ""
    docker_url: str = "unix:///var/run/docker.sock"
    # which engine runs tasks: "docker" (the one engine of this host) or "swarm" (a Docker
    # Swarm whose manager answers at docker_url: tasks placed across its nodes)
    engine: str = "docker"

    # api
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_prefix: str = ""
    api_public_url: str = "http://127.0.0.1:8080"
    token_ttl_s: int = 12 * 3600
    max_body_bytes: int = 64 * 1024
    # fair shares between projects
    max_follows_per_project: int = 200
    log_reads_per_project: int = 2

    # gateway (HAProxy)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    gateway_public_url: str = "http://127.0.0.1:8000"
    # HAProxy's pool of backends to start with (one per service; grown by a reload)
    gateway_slots: int = 64

    # registry
    registry_addr: str = "127.0.0.1:5000"  # how engines (and users) reach the registry
    registry_listen: str = ""  # where it listens, if not there (e.g. 0.0.0.0:5000)
    docker_cred_ttl_s: int = 12 * 3600

    # deployer
    deploy_deadline_s: float = 60.0
    reconcile_interval_s: float = 10.0
    restart_backoff_s: float = 1.0
    restart_backoff_cap_s: float = 60.0
    stop_timeout_s: int = 10
    capacity_mb: int = 4096
    max_memory_mb: int = 65536
    max_tasks_per_service: int = 10

    # tasks' containment: one network per project with subnets from this pool, and limits
    task_network_pool: str = "10.213.0.0/16"
    task_network_prefix: int = 24
    task_pids_limit: int = 256
    task_capabilities: tuple[str, ...] = (
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "SETUID",
        "SETGID",
        "NET_BIND_SERVICE",
        "KILL",
    )
    task_no_new_privileges: bool = True
    # refuse new connections from tasks to the host itself (iptables INPUT rule)
    task_firewall: bool = True

    # logs
    log_max_lines_per_task: int = 10_000
    log_max_age_s: int = 7 * 24 * 3600
    log_max_line_bytes: int = 8192
    events_per_service: int = 200

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def token_key_path(self) -> Path:
        return self.keys_dir / "registry-token.key"

    @property
    def token_cert_path(self) -> Path:
        return self.keys_dir / "registry-token.crt"

    @property
    def deployer_secret_path(self) -> Path:
        return self.keys_dir / "deployer-registry.secret"

    def nats_secret_path(self, identity: str) -> Path:
        """The password of one of the platform's NATS identities (file mode 0600)."""
        return self.keys_dir / "nats" / f"{identity}.secret"

    @property
    def nats_issuer_seed_path(self) -> Path:
        """The account nkey seed that signs the user JWTs the auth callout issues."""
        return self.keys_dir / "nats" / "callout-issuer.seed"

    @property
    def nats_config_path(self) -> Path:
        return self.data_dir / "run" / "nats.conf"

    @property
    def nats_pid_path(self) -> Path:
        return self.data_dir / "run" / "nats.pid"

    @property
    def nats_projects_path(self) -> Path:
        """The projects that have a NATS account (their users may connect)."""
        return self.data_dir / "nats-projects.json"

    @property
    def nats_store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def nats_users_url(self) -> str:
        return self.nats_public_url or self.nats_url

    @property
    def registry_url(self) -> str:
        return f"http://{self.registry_addr}"

    @property
    def haproxy_config_path(self) -> Path:
        return self.data_dir / "run" / "haproxy.cfg"

    @property
    def haproxy_map_path(self) -> Path:
        """HAProxy's routes map: first path segment -> backend."""
        return self.data_dir / "run" / "haproxy-routes.map"

    @property
    def haproxy_socket_path(self) -> Path:
        """HAProxy's stats socket (runtime API, admin level; mode 0600)."""
        return self.data_dir / "run" / "haproxy.sock"

    @property
    def haproxy_master_socket_path(self) -> Path:
        """HAProxy's master CLI (reloads; mode 0600)."""
        return self.data_dir / "run" / "haproxy-master.sock"

    @property
    def token_realm(self) -> str:
        return f"{self.api_public_url.rstrip('/')}{self.api_prefix}/auth/registry"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from SERVICECTL_* variables; unset ones take defaults."""
        d = cls()
        api_host = _str(env, "SERVICECTL_API_HOST", d.api_host)
        api_port = _int(env, "SERVICECTL_API_PORT", d.api_port, 1, 65535)
        gw_host = _str(env, "SERVICECTL_GATEWAY_HOST", d.gateway_host)
        gw_port = _int(env, "SERVICECTL_GATEWAY_PORT", d.gateway_port, 1, 65535)
        host_mb = _host_memory_mb()
        return cls(
            data_dir=Path(_str(env, "SERVICECTL_DATA_DIR", str(d.data_dir))).absolute(),
            instance=_str(env, "SERVICECTL_INSTANCE", d.instance),
            nats_url=_str(env, "SERVICECTL_NATS_URL", d.nats_url),
            nats_public_url=_str(env, "SERVICECTL_NATS_PUBLIC_URL", ""),
            docker_url=_str(env, "SERVICECTL_DOCKER_URL", d.docker_url),
            engine=_choice(env, "SERVICECTL_ENGINE", d.engine, ("docker", "swarm")),
            api_host=api_host,
            api_port=api_port,
            api_prefix=_normalise_prefix(_str(env, "SERVICECTL_API_PREFIX", "")),
            api_public_url=_str(
                env, "SERVICECTL_API_PUBLIC_URL", f"http://{api_host}:{api_port}"
            ).rstrip("/"),
            token_ttl_s=_int(env, "SERVICECTL_TOKEN_TTL", d.token_ttl_s, 10, 30 * 86400),
            max_body_bytes=_int(env, "SERVICECTL_MAX_BODY", d.max_body_bytes, 1024, 1 << 24),
            max_follows_per_project=_int(
                env, "SERVICECTL_MAX_FOLLOWS_PER_PROJECT", d.max_follows_per_project, 1, 100_000
            ),
            log_reads_per_project=_int(
                env, "SERVICECTL_LOG_READS_PER_PROJECT", d.log_reads_per_project, 1, 1000
            ),
            gateway_host=gw_host,
            gateway_port=gw_port,
            gateway_public_url=_str(
                env, "SERVICECTL_GATEWAY_PUBLIC_URL", f"http://{gw_host}:{gw_port}"
            ).rstrip("/"),
            gateway_slots=_int(env, "SERVICECTL_GATEWAY_SLOTS", d.gateway_slots, 1, 50_000),
            registry_addr=_str(env, "SERVICECTL_REGISTRY_ADDR", d.registry_addr),
            registry_listen=_str(env, "SERVICECTL_REGISTRY_LISTEN", ""),
            docker_cred_ttl_s=_int(
                env, "SERVICECTL_DOCKER_CRED_TTL", d.docker_cred_ttl_s, 10, 30 * 86400
            ),
            deploy_deadline_s=_float(
                env, "SERVICECTL_DEPLOY_DEADLINE", d.deploy_deadline_s, 1, 3600
            ),
            reconcile_interval_s=_float(
                env, "SERVICECTL_RECONCILE_INTERVAL", d.reconcile_interval_s, 0.5, 3600
            ),
            restart_backoff_s=_float(
                env, "SERVICECTL_RESTART_BACKOFF", d.restart_backoff_s, 0.1, 600
            ),
            restart_backoff_cap_s=_float(
                env, "SERVICECTL_RESTART_BACKOFF_CAP", d.restart_backoff_cap_s, 0.1, 3600
            ),
            stop_timeout_s=_int(env, "SERVICECTL_STOP_TIMEOUT", d.stop_timeout_s, 0, 600),
            capacity_mb=_int(env, "SERVICECTL_CAPACITY_MB", max(256, host_mb - 1024), 16, 1 << 30),
            max_memory_mb=_int(env, "SERVICECTL_MAX_MEMORY_MB", host_mb, 16, 1 << 30),
            max_tasks_per_service=_int(
                env, "SERVICECTL_MAX_TASKS_PER_SERVICE", d.max_tasks_per_service, 1, 1000
            ),
            task_network_pool=_network(env, "SERVICECTL_TASK_NETWORK_POOL", d.task_network_pool),
            task_network_prefix=_int(
                env, "SERVICECTL_TASK_NETWORK_PREFIX", d.task_network_prefix, 16, 29
            ),
            task_pids_limit=_int(env, "SERVICECTL_TASK_PIDS_LIMIT", d.task_pids_limit, 16, 1 << 22),
            task_capabilities=_caps(env, "SERVICECTL_TASK_CAPABILITIES", d.task_capabilities),
            task_no_new_privileges=_bool(
                env, "SERVICECTL_TASK_NO_NEW_PRIVILEGES", d.task_no_new_privileges
            ),
            task_firewall=_bool(env, "SERVICECTL_TASK_FIREWALL", d.task_firewall),
            log_max_lines_per_task=_int(
                env, "SERVICECTL_LOG_MAX_LINES", d.log_max_lines_per_task, 10, 10_000_000
            ),
            log_max_age_s=_int(env, "SERVICECTL_LOG_MAX_AGE", d.log_max_age_s, 60, 365 * 86400),
            log_max_line_bytes=_int(
                env, "SERVICECTL_LOG_MAX_LINE", d.log_max_line_bytes, 256, 1 << 20
            ),
            events_per_service=_int(
                env, "SERVICECTL_EVENTS_PER_SERVICE", d.events_per_service, 10, 100_000
            ),
        )
