"""`servicectl health`: the health check as the status view shows it, and what to PATCH. Pure.

The status view gives the absolute path the check requests
(`target_health.health_check_path`, `/<project>-<name><rel_path>`); the API
takes the path relative to the service's deployment path. `merged` lays the
options given over the current check, so a PATCH changes only what was asked.
No I/O.
"""

from __future__ import annotations

from typing import Any

from servicectl.models import HealthCheck, TargetHealth


def rel_path(health_check_path: str, deployment_path: str) -> str:
    """`/demo-web/healthz` under `/demo-web` -> `/healthz`; the deployment path itself -> `/`."""
    base = deployment_path.rstrip("/")
    if base and health_check_path.startswith(base):
        rest = health_check_path[len(base) :]
        if not rest or rest.startswith("/"):
            return rest or "/"
    return health_check_path or "/"


def current(th: TargetHealth, deployment_path: str) -> HealthCheck:
    """The check the service has now, in the API's request shape."""
    d = HealthCheck()
    return HealthCheck(
        rel_path=rel_path(th.health_check_path, deployment_path),
        status_codes=th.status_codes or d.status_codes,
        interval=th.interval or d.interval,
    )


def merged(
    now: HealthCheck, path: str | None, codes: str | None, interval: int | None
) -> HealthCheck:
    return HealthCheck(
        rel_path=path if path is not None else now.rel_path,
        status_codes=codes if codes is not None else now.status_codes,
        interval=interval if interval is not None else now.interval,
    )


def patch_body(check: HealthCheck) -> dict[str, Any]:
    return {
        "health_check": {
            "rel_path": check.rel_path,
            "status_codes": check.status_codes,
            "interval": check.interval,
        }
    }


def describe(th: TargetHealth) -> str:
    """'GET /demo-web/healthz every 10 s, healthy on 200-399'."""
    return (
        f"GET {th.health_check_path or '-'} every {th.interval} s, healthy on "
        f"{th.status_codes or '-'}"
    )
