"""Platform settings: one frozen object, read from the environment once.

`Settings.from_env` is called by each process's `__main__` (and by test
fixtures with a dict); everything else receives the object explicitly. No other
module reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
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
    docker_url: str = "unix:///var/run/docker.sock"

    # api
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_prefix: str = ""
    api_public_url: str = "http://127.0.0.1:8080"
    token_ttl_s: int = 12 * 3600
    max_body_bytes: int = 64 * 1024

    # gateway / caddy
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    gateway_public_url: str = "http://127.0.0.1:8000"
    caddy_admin: str = "127.0.0.1:2019"
    # the gateway's DNS responder and Caddy's two fallback answers (loopback only)
    gateway_dns_port: int = 8053
    gateway_notfound_port: int = 8054
    gateway_unavailable_port: int = 8055

    # registry
    registry_addr: str = "127.0.0.1:5000"
    docker_cred_ttl_s: int = 12 * 3600

    # deployer
    deploy_deadline_s: float = 60.0
    reconcile_interval_s: float = 10.0
    restart_backoff_s: float = 1.0
    restart_backoff_cap_s: float = 60.0
    stop_timeout_s: int = 10
    capacity_mb: int = 4096
    max_memory_mb: int = 65536

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

    @property
    def gateway_routes_path(self) -> Path:
        """Where the gateway writes the routes its DNS responder answers from."""
        return self.data_dir / "run" / "gateway-routes.json"

    @property
    def registry_url(self) -> str:
        return f"http://{self.registry_addr}"

    @property
    def caddy_admin_url(self) -> str:
        return f"http://{self.caddy_admin}"

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
            docker_url=_str(env, "SERVICECTL_DOCKER_URL", d.docker_url),
            api_host=api_host,
            api_port=api_port,
            api_prefix=_normalise_prefix(_str(env, "SERVICECTL_API_PREFIX", "")),
            api_public_url=_str(
                env, "SERVICECTL_API_PUBLIC_URL", f"http://{api_host}:{api_port}"
            ).rstrip("/"),
            token_ttl_s=_int(env, "SERVICECTL_TOKEN_TTL", d.token_ttl_s, 10, 30 * 86400),
            max_body_bytes=_int(env, "SERVICECTL_MAX_BODY", d.max_body_bytes, 1024, 1 << 24),
            gateway_host=gw_host,
            gateway_port=gw_port,
            gateway_public_url=_str(
                env, "SERVICECTL_GATEWAY_PUBLIC_URL", f"http://{gw_host}:{gw_port}"
            ).rstrip("/"),
            caddy_admin=_str(env, "SERVICECTL_CADDY_ADMIN", d.caddy_admin),
            gateway_dns_port=_int(env, "SERVICECTL_GATEWAY_DNS_PORT", d.gateway_dns_port, 1, 65535),
            gateway_notfound_port=_int(
                env, "SERVICECTL_GATEWAY_NOTFOUND_PORT", d.gateway_notfound_port, 1, 65535
            ),
            gateway_unavailable_port=_int(
                env, "SERVICECTL_GATEWAY_UNAVAILABLE_PORT", d.gateway_unavailable_port, 1, 65535
            ),
            registry_addr=_str(env, "SERVICECTL_REGISTRY_ADDR", d.registry_addr),
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
            max_memory_mb=_int(env, "SERVICECTL_MAX_MEMORY_MB", d.max_memory_mb, 16, 1 << 30),
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
